// deploy/kubernetes.yaml, offline: every object validated against the Kubernetes
// API schemas by kubernetes-models (a broken copy must fail the same check), then
// the properties the cluster relies on, checked one by one; the join settings also
// as each pod reads them (node/config.ts), after the kubelet's $(VAR) expansion.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Service } from "kubernetes-models/v1";
import { StatefulSet } from "kubernetes-models/apps/v1";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import type { IContainer, IEnvVar, IVolume } from "kubernetes-models/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type ReplicaConfig, readConfig } from "../../node/config.js";
import { repositoryRoot } from "./deployFiles.js";

interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly [field: string]: unknown;
}

/** The kubernetes-models class for each apiVersion/kind the file may hold. */
const modelByKind: Record<string, (manifest: Manifest) => { validate(): void }> = {
  "v1/Service": (manifest) => new Service(manifest),
  "apps/v1/StatefulSet": (manifest) => new StatefulSet(manifest),
  "networking.k8s.io/v1/Ingress": (manifest) => new Ingress(manifest),
  "policy/v1/PodDisruptionBudget": (manifest) => new PodDisruptionBudget(manifest),
};

function readManifests(text: string): Manifest[] {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) throw new Error("deploy/kubernetes.yaml is empty");
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`YAML error: ${document.errors.map((error) => error.message).join("; ")}`);
  }
  return documents.map((document) => document.toJS() as Manifest).filter((manifest) => manifest !== null);
}

/** Every validation error of every object, as "Kind/name: message" (empty when all are valid). */
function validationErrors(manifests: readonly Manifest[]): string[] {
  const errors: string[] = [];
  for (const manifest of manifests) {
    const where = `${manifest.kind}/${manifest.metadata?.name}`;
    const model = modelByKind[`${manifest.apiVersion}/${manifest.kind}`];
    if (model === undefined) {
      errors.push(`${where}: no kubernetes-models class for ${manifest.apiVersion} ${manifest.kind} in this test`);
      continue;
    }
    try {
      model(manifest).validate();
    } catch (error) {
      errors.push(`${where}: ${(error as Error).message}`);
    }
  }
  return errors;
}

const manifestText = readFileSync(join(repositoryRoot, "deploy/kubernetes.yaml"), "utf8");
const manifests = readManifests(manifestText);

function find<T>(kind: string, name: string): T {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  if (found === undefined) throw new Error(`deploy/kubernetes.yaml has no ${kind} ${name}`);
  return found as unknown as T;
}

const statefulSet = find<StatefulSet>("StatefulSet", "shop");
const podSpec = statefulSet.spec!.template.spec!;
const replica = podSpec.containers[0] as IContainer;

/**
 * A pod's environment as the kubelet makes it: metadata.name is the pod's name, and
 * $(VAR) expands only a variable defined above it ($$ is a literal $; others stay as written).
 */
function podEnvironment(variables: readonly IEnvVar[], podName: string): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const variable of variables) {
    if (variable.valueFrom !== undefined) {
      if (variable.valueFrom.fieldRef?.fieldPath !== "metadata.name") throw new Error(`${variable.name}: only metadata.name is simulated here`);
      environment[variable.name] = podName;
      continue;
    }
    environment[variable.name] = (variable.value ?? "").replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name?: string) =>
      name === undefined ? "$" : (environment[name] ?? whole),
    );
  }
  return environment;
}

/** The settings a pod of the StatefulSet starts with; its secret files are not here, so a secret is given as a value. */
function podConfig(variables: readonly IEnvVar[], podName: string): ReplicaConfig {
  const { CLUSTER_SECRET_FILE: _secretFile, ADMIN_TOKEN_FILE: _tokenFile, ...environment } = podEnvironment(variables, podName);
  return readConfig([], { ...environment, CLUSTER_SECRET: "a-cluster-secret-for-this-test" });
}

describe("deploy/kubernetes.yaml", () => {
  it("holds only objects that kubernetes-models validates without an error", () => {
    expect(manifests.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`)).toEqual([
      "Service/shop-peers",
      "Service/shop",
      "Ingress/shop",
      "PodDisruptionBudget/shop",
      "StatefulSet/shop",
    ]);
    expect(validationErrors(manifests)).toEqual([]);
  });

  it("fails that validation on a broken copy (so the check above can fail)", () => {
    const broken = readManifests(
      manifestText
        .replace("replicas: 3", 'replicas: "three"')
        .replace("containerPort: 8000", "containerPort: http")
        .replace("maxUnavailable: 1", "maxUnavailable: [1]")
        .replace("pathType: Exact", "pathType: 7"),
    );
    const errors = validationErrors(broken);
    expect(errors.join("\n")).toMatch(/StatefulSet\/shop: .*spec\/replicas must be integer/);
    expect(errors.join("\n")).toMatch(/StatefulSet\/shop: .*containerPort must be integer/);
    expect(errors.join("\n")).toMatch(/PodDisruptionBudget\/shop: .*maxUnavailable/);
    expect(errors.join("\n")).toMatch(/Ingress\/shop: .*pathType/);
    expect(validationErrors([{ apiVersion: "v1", kind: "ConfigMapp", metadata: { name: "typo" } }])).toEqual([
      "ConfigMapp/typo: no kubernetes-models class for v1 ConfigMapp in this test",
    ]);
  });

  it("publishes the peers' addresses before they are ready, and starts the pods in parallel", () => {
    const peers = find<Service>("Service", "shop-peers");
    expect(peers.spec?.clusterIP).toBe("None");
    expect(peers.spec?.publishNotReadyAddresses).toBe(true);
    expect(statefulSet.spec?.serviceName).toBe("shop-peers");
    expect(statefulSet.spec?.podManagementPolicy).toBe("Parallel");
    const peerList = replica.env?.find((variable) => variable.name === "PEERS")?.value ?? "";
    expect(peerList.split(",")).toEqual([0, 1, 2].map((index) => `shop-${index}=shop-${index}.shop-peers:9000`));
    expect(statefulSet.spec?.replicas).toBe(3);
  });

  it("grows by kubectl scale: pods beyond the founders join through the founders' peer ports, each advertising its stable name", () => {
    const headless = find<Service>("Service", "shop-peers");
    const domain = statefulSet.spec!.serviceName;
    expect(domain).toBe(headless.metadata?.name);
    const peerPort = headless.spec?.ports?.find((port) => port.name === "peer")?.port;
    expect(replica.ports?.find((port) => port.name === "peer")?.containerPort).toBe(peerPort);
    const variables = replica.env ?? [];
    const valueOf = (name: string) => variables.find((variable) => variable.name === name)?.value;
    expect(valueOf("PEER_PORT")).toBe(String(peerPort));
    // The kubelet expands $(REPLICA_ID) only if it is defined above.
    const order = variables.map((variable) => variable.name);
    expect(order.indexOf("REPLICA_ID")).toBeLessThan(order.indexOf("ADVERTISE_HOST"));
    expect(valueOf("ADVERTISE_HOST")).toBe(`$(REPLICA_ID).${domain}`);
    const founders = [0, 1, 2].map((index) => `shop-${index}`);
    const seeds = founders.map((pod) => `${pod}.${domain}:${peerPort}`);
    expect(valueOf("JOIN")?.split(",")).toEqual(seeds);

    // As each pod reads its settings: a founder ignores JOIN, any other pod joins; all advertise <pod>.<headless Service>.
    for (const pod of founders) {
      const config = podConfig(variables, pod);
      expect(config.replicaId).toBe(pod);
      expect(config.join, pod).toEqual([]);
      expect(config.advertiseHost).toBe(`${pod}.${domain}`);
      expect(config.peers.map((peer) => `${peer.replicaId}=${peer.address}`)).toEqual(
        founders.filter((other) => other !== pod).map((other) => `${other}=${other}.${domain}:${peerPort}`),
      );
    }
    for (const pod of ["shop-3", "shop-4"]) {
      const config = podConfig(variables, pod);
      expect(config.join, pod).toEqual(seeds);
      expect(config.advertiseHost).toBe(`${pod}.${domain}`);
      expect(config.peerPort).toBe(peerPort);
    }
  });

  it("would advertise an unexpanded name with ADVERTISE_HOST above REPLICA_ID (so the order check can fail)", () => {
    const variables = replica.env ?? [];
    const advertise = variables.filter((variable) => variable.name === "ADVERTISE_HOST");
    const reordered = [...advertise, ...variables.filter((variable) => variable.name !== "ADVERTISE_HOST")];
    expect(podConfig(reordered, "shop-3").advertiseHost).toBe("$(REPLICA_ID).shop-peers");
  });

  it("bounds each replica's resources and keeps a disruption to one replica at a time", () => {
    for (const container of podSpec.containers) {
      for (const bound of [container.resources?.requests, container.resources?.limits]) {
        expect(Object.keys(bound ?? {}).sort(), container.name).toEqual(["cpu", "memory"]);
      }
    }
    const budget = find<PodDisruptionBudget>("PodDisruptionBudget", "shop");
    expect(budget.spec?.maxUnavailable).toBe(1);
    expect(budget.spec?.selector?.matchLabels).toEqual(statefulSet.spec?.selector.matchLabels);
  });

  it("runs as a non-root user, read-only, with no capabilities", () => {
    expect(podSpec.securityContext?.runAsNonRoot).toBe(true);
    expect(podSpec.securityContext?.runAsUser).toBe(1000);
    expect(podSpec.automountServiceAccountToken).toBe(false);
    for (const container of podSpec.containers) {
      expect(container.securityContext?.readOnlyRootFilesystem, container.name).toBe(true);
      expect(container.securityContext?.allowPrivilegeEscalation, container.name).toBe(false);
      expect(container.securityContext?.capabilities?.drop, container.name).toEqual(["ALL"]);
      expect(container.securityContext?.capabilities?.add, container.name).toBeUndefined();
    }
  });

  it("gives the secrets as files named by CLUSTER_SECRET_FILE and ADMIN_TOKEN_FILE, never as values", () => {
    const environment = new Map((replica.env ?? []).map((variable) => [variable.name, variable]));
    expect(environment.has("CLUSTER_SECRET")).toBe(false);
    expect(environment.has("ADMIN_TOKEN")).toBe(false);
    const filesBySecret: Record<string, string> = {};
    for (const volume of podSpec.volumes ?? ([] as IVolume[])) {
      const mount = replica.volumeMounts?.find((candidate) => candidate.name === volume.name);
      for (const source of volume.projected?.sources ?? []) {
        for (const item of source.secret?.items ?? []) {
          expect(mount?.readOnly, volume.name).toBe(true);
          filesBySecret[`${source.secret?.name}/${item.key}`] = `${mount?.mountPath}/${item.path}`;
        }
      }
    }
    expect(filesBySecret).toEqual({
      "shop-cluster/secret": environment.get("CLUSTER_SECRET_FILE")?.value,
      "shop-admin/token": environment.get("ADMIN_TOKEN_FILE")?.value,
    });
    // The header's commands make exactly these secrets and keys.
    expect(manifestText).toContain("kubectl create secret generic shop-cluster --from-literal=secret=$(openssl rand -hex 24)");
    expect(manifestText).toContain("kubectl create secret generic shop-admin --from-literal=token=$(openssl rand -hex 24)");
  });

  it("is ready on /ready and alive on /health", () => {
    expect(replica.readinessProbe?.httpGet?.path).toBe("/ready");
    expect(replica.livenessProbe?.httpGet?.path).toBe("/health");
    expect(replica.startupProbe?.httpGet?.path).toBe("/health");
  });

  it("lets in through the Ingress only the shop API and the read-only operations routes", () => {
    const ingress = find<Ingress>("Ingress", "shop");
    const paths = (ingress.spec?.rules ?? []).flatMap((rule) => rule.http?.paths ?? []);
    expect(paths.map((path) => `${path.pathType} ${path.path}`)).toEqual([
      "Prefix /orders",
      "Prefix /payment",
      "Prefix /stock",
      "Exact /health",
      "Exact /ready",
      "Exact /metrics",
      "Prefix /documentation",
      "Prefix /dashboard",
    ]);
    for (const path of paths) expect(path.backend.service).toEqual({ name: "shop", port: { name: "http" } });
    expect(find<Service>("Service", "shop").spec?.type).toBe("ClusterIP");
  });
});
