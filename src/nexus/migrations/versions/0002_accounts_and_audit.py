"""Accounts and audit: users, token families, invites, and an append-only audit log.

``audit_logs`` cannot be rewritten, even by the application: a trigger
rejects every UPDATE and DELETE, and another every TRUNCATE. It has no
foreign key to ``users``: history outlives accounts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            email text NOT NULL,
            password_hash text NOT NULL,
            role text NOT NULL DEFAULT 'member',
            is_active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            last_login_at timestamptz,
            CONSTRAINT pk_users PRIMARY KEY (id),
            CONSTRAINT ck_users_role CHECK (role IN ('admin', 'member')),
            CONSTRAINT ck_users_email_length CHECK (char_length(email) BETWEEN 3 AND 320)
        );
        -- Unique however it is capitalised: Alice@x and alice@x are one account.
        CREATE UNIQUE INDEX uq_users_email_lower ON users (lower(email));
        CREATE INDEX ix_users_role_active ON users (role, is_active);
        CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
            FOR EACH ROW EXECUTE FUNCTION nexus_set_updated_at();

        -- One row per login: every access and refresh token carries its id.
        -- refresh_jti is the only refresh token of the family still valid.
        CREATE TABLE token_families (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL,
            refresh_jti text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            revoked_reason text,
            CONSTRAINT pk_token_families PRIMARY KEY (id),
            CONSTRAINT fk_token_families_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_token_families_user_id ON token_families (user_id);
        CREATE INDEX ix_token_families_expires_at ON token_families (expires_at);

        -- Only the SHA-256 of a code is stored; the code is shown once.
        CREATE TABLE invites (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            code_sha256 text NOT NULL,
            created_by uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            used_at timestamptz,
            used_by uuid,
            CONSTRAINT pk_invites PRIMARY KEY (id),
            CONSTRAINT uq_invites_code_sha256 UNIQUE (code_sha256)
        );

        CREATE TABLE audit_logs (
            id bigint GENERATED ALWAYS AS IDENTITY,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            actor_id uuid,
            actor_role text,
            action text NOT NULL,
            target_type text,
            target_id text,
            meta jsonb NOT NULL DEFAULT '{}'::jsonb,
            ip inet,
            user_agent text,
            status text NOT NULL,
            request_id text,
            CONSTRAINT pk_audit_logs PRIMARY KEY (id),
            CONSTRAINT ck_audit_logs_status CHECK (status IN ('success', 'failure'))
        );
        CREATE INDEX ix_audit_logs_actor_occurred ON audit_logs (actor_id, occurred_at);
        CREATE INDEX ix_audit_logs_action_occurred ON audit_logs (action, occurred_at);
        CREATE INDEX ix_audit_logs_target_occurred
            ON audit_logs (target_type, target_id, occurred_at);
        CREATE INDEX ix_audit_logs_status_occurred ON audit_logs (status, occurred_at);

        CREATE FUNCTION audit_logs_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$;
        CREATE TRIGGER audit_logs_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_logs
            FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
        CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
            FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE audit_logs;
        DROP FUNCTION audit_logs_append_only();
        DROP TABLE invites;
        DROP TABLE token_families;
        DROP TABLE users;
        """
    )
