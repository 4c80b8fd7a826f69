// Type-checks tend's dashboards with Grafana's own types (@grafana/schema)
// and its Kubernetes manifests with kubernetes-models, then validates the
// manifests against the models' JSON schemas at run time.
//
// Usage: node typecheck.mjs REPO_ROOT, run from the directory that contains
// node_modules (testbed/check-artifacts.sh copies it there). Each file
// becomes an object literal checked with `satisfies`, so TypeScript also
// rejects properties the types do not declare.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const root = path.resolve(process.argv[2] ?? "");
const moduleDir = path.dirname(new URL(import.meta.url).pathname);
const work = path.join(moduleDir, "typecheck");
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work);

// @grafana/schema types a query as DataQuery, without the Prometheus data
// source's own fields. PromQuery adds the ones these dashboards use, as
// Grafana's Prometheus query editor saves them.
const dashboardPrelude = `
import type { Dashboard, DataQuery, Panel, RowPanel } from "@grafana/schema";
interface PromQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
}
type PromPanel = Omit<Panel, "targets"> & { targets: PromQuery[] };
// The schema declares string enums (ThresholdsMode and others), and a JSON
// string can only be one of their values, so compare with those values.
type Json<T> = T extends string ? \`\${T}\` : T extends object ? { [K in keyof T]: Json<T[K]> } : T;
type TendDashboard = Json<Omit<Dashboard, "panels"> & { panels: Array<PromPanel | RowPanel> }>;
`;

const models = {
  Deployment: ["kubernetes-models/apps/v1/Deployment", "Deployment"],
  ServiceAccount: ["kubernetes-models/v1/ServiceAccount", "ServiceAccount"],
  ConfigMap: ["kubernetes-models/v1/ConfigMap", "ConfigMap"],
  Secret: ["kubernetes-models/v1/Secret", "Secret"],
  Service: ["kubernetes-models/v1/Service", "Service"],
  ServiceMonitor: ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  PrometheusRule: ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
};

const sources = [];
const dashboards = fs.readdirSync(path.join(root, "dashboards")).filter((f) => f.endsWith(".json"));
for (const name of dashboards) {
  const json = fs.readFileSync(path.join(root, "dashboards", name), "utf8");
  const file = path.join(work, `dashboard-${path.basename(name, ".json")}.ts`);
  fs.writeFileSync(file, `${dashboardPrelude}\nexport const dashboard = ${json.trim()} satisfies TendDashboard;\n`);
  sources.push(file);
}

const manifests = [];
for (const name of fs.readdirSync(path.join(root, "manifests")).filter((f) => f.endsWith(".yaml"))) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(root, "manifests", name), "utf8"))) {
    const object = doc.toJS();
    if (object?.kind === "Kustomization") continue;
    const model = models[object?.kind];
    if (!model) {
      console.error(`manifests/${name}: no model for kind ${object?.kind}`);
      process.exit(1);
    }
    manifests.push({ name, object, model });
  }
}
manifests.forEach(({ name, object, model: [module, type] }, index) => {
  const file = path.join(work, `manifest-${index}-${path.basename(name, ".yaml")}.ts`);
  const text = `import type { I${type} } from "${module}";\n` +
    `export const manifest = ${JSON.stringify(object, null, 2)} satisfies I${type};\n`;
  fs.writeFileSync(file, text);
  sources.push(file);
});

const tsc = path.join(moduleDir, "node_modules", "typescript", "bin", "tsc");
try {
  execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--target", "es2022",
    "--module", "nodenext", "--moduleResolution", "nodenext", "--skipLibCheck", ...sources],
  { stdio: "inherit", cwd: moduleDir });
} catch {
  console.error(`tsc rejected the files above (generated in ${work})`);
  process.exit(1);
}

let failed = false;
for (const { name, object, model: [module, type] } of manifests) {
  const exports = await import(module);
  try {
    new exports[type](object).validate();
  } catch (error) {
    console.error(`manifests/${name}: ${object.kind} ${object.metadata?.name} is invalid: ${error.message}`);
    failed = true;
  }
}
if (failed) process.exit(1);
console.log(`typed ${dashboards.length} dashboards and ${manifests.length} manifests`);
