"""Libraries and media: the nexus-pr01 schema (§10.3) on Nexus's users, and what a service adds.

The spec's five tables, column for column: ``libraries`` (one default per
user, a partial unique index), ``memberships`` and ``library_media`` (composite
keys), ``media`` and ``fragments`` (``UNIQUE (media_id, idx)``), every foreign
key ``ON DELETE CASCADE``. Beside them: ``media.processing_error`` and
``media.created_by``, ``media_originals`` (the uploaded bytes, their type,
size and SHA-256), and a GIN full-text index over fragments. Every existing
user gets a default library, as every new one does.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE libraries (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            owner_user_id uuid NOT NULL,
            name text NOT NULL,
            is_default boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_libraries PRIMARY KEY (id),
            CONSTRAINT fk_libraries_owner_user_id_users FOREIGN KEY (owner_user_id)
                REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT ck_libraries_name_length CHECK (char_length(name) BETWEEN 1 AND 100)
        );
        CREATE UNIQUE INDEX uix_libraries_one_default_per_user
            ON libraries (owner_user_id) WHERE is_default = true;
        CREATE INDEX ix_libraries_owner_user_id ON libraries (owner_user_id);
        CREATE TRIGGER libraries_set_updated_at BEFORE UPDATE ON libraries
            FOR EACH ROW EXECUTE FUNCTION nexus_set_updated_at();

        CREATE TABLE memberships (
            library_id uuid NOT NULL,
            user_id uuid NOT NULL,
            role text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_memberships PRIMARY KEY (library_id, user_id),
            CONSTRAINT fk_memberships_library_id_libraries FOREIGN KEY (library_id)
                REFERENCES libraries (id) ON DELETE CASCADE,
            CONSTRAINT fk_memberships_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT ck_memberships_role CHECK (role IN ('admin', 'member'))
        );
        CREATE INDEX ix_memberships_user_id ON memberships (user_id);

        CREATE TABLE media (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            kind text NOT NULL,
            title text NOT NULL,
            canonical_source_url text,
            processing_status text NOT NULL DEFAULT 'pending',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            processing_error text,
            created_by uuid,
            CONSTRAINT pk_media PRIMARY KEY (id),
            CONSTRAINT fk_media_created_by_users FOREIGN KEY (created_by)
                REFERENCES users (id) ON DELETE SET NULL,
            CONSTRAINT ck_media_kind CHECK
                (kind IN ('web_article', 'epub', 'pdf', 'video', 'podcast_episode')),
            CONSTRAINT ck_media_processing_status CHECK (processing_status IN
                ('pending', 'extracting', 'ready_for_reading', 'embedding', 'ready', 'failed'))
        );
        CREATE INDEX ix_media_created_by ON media (created_by);
        CREATE TRIGGER media_set_updated_at BEFORE UPDATE ON media
            FOR EACH ROW EXECUTE FUNCTION nexus_set_updated_at();

        CREATE TABLE media_originals (
            media_id uuid NOT NULL,
            content_type text NOT NULL,
            filename text,
            size bigint NOT NULL,
            sha256 text NOT NULL,
            content bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_media_originals PRIMARY KEY (media_id),
            CONSTRAINT fk_media_originals_media_id_media FOREIGN KEY (media_id)
                REFERENCES media (id) ON DELETE CASCADE,
            CONSTRAINT ck_media_originals_size CHECK (size >= 0),
            CONSTRAINT ck_media_originals_sha256_length CHECK (char_length(sha256) = 64)
        );
        CREATE INDEX ix_media_originals_sha256 ON media_originals (sha256);

        CREATE TABLE fragments (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            media_id uuid NOT NULL,
            idx integer NOT NULL,
            canonical_text text NOT NULL,
            html_sanitized text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_fragments PRIMARY KEY (id),
            CONSTRAINT fk_fragments_media_id_media FOREIGN KEY (media_id)
                REFERENCES media (id) ON DELETE CASCADE,
            CONSTRAINT uq_fragments_media_id_idx UNIQUE (media_id, idx)
        );
        CREATE INDEX ix_fragments_search ON fragments
            USING gin (to_tsvector('english', canonical_text));

        CREATE TABLE library_media (
            library_id uuid NOT NULL,
            media_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_library_media PRIMARY KEY (library_id, media_id),
            CONSTRAINT fk_library_media_library_id_libraries FOREIGN KEY (library_id)
                REFERENCES libraries (id) ON DELETE CASCADE,
            CONSTRAINT fk_library_media_media_id_media FOREIGN KEY (media_id)
                REFERENCES media (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_library_media_media_id ON library_media (media_id);

        -- Every existing user gets what every new one gets: a default
        -- library, with the user as its admin.
        WITH made AS (
            INSERT INTO libraries (owner_user_id, name, is_default)
            SELECT id, 'My library', true FROM users
            RETURNING id, owner_user_id
        )
        INSERT INTO memberships (library_id, user_id, role)
        SELECT id, owner_user_id, 'admin' FROM made;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE library_media;
        DROP TABLE fragments;
        DROP TABLE media_originals;
        DROP TABLE media;
        DROP TABLE memberships;
        DROP TABLE libraries;
        """
    )
