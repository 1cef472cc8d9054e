// KEDA's objects against KEDA's own schemas, offline (@kubernetes-models/keda).
//
//   node validate_keda.mjs < objects.json     (a JSON array of objects)
//
// Prints one line per object; exits 1 if any is invalid or of a kind
// unknown here.
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const kinds = { ScaledObject, TriggerAuthentication };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
let failed = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = kinds[object.kind];
  if (Model === undefined || object.apiVersion !== "keda.sh/v1alpha1") {
    console.log(`FAIL ${name}: no KEDA schema for ${object.apiVersion} ${object.kind}`);
    failed += 1;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok   ${name} (keda.sh/v1alpha1)`);
  } catch (error) {
    console.log(`FAIL ${name}: ${error.message}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
