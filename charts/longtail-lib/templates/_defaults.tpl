{{/*
The defaults of every service chart, in the manner of the bjw-s `common` library chart: a service
chart's values.yaml holds only its own values (its settings section, grpc.healthService, replicas,
resources, what its schema bounds), and `longtail-lib.init` merges the chart's values (values.yaml,
then -f/--set, as Helm coalesced them) over these before anything renders. So every key below can be
set in a service chart's values, in a values file or with --set, exactly as if it were in the
chart's values.yaml; values.schema.json (generated from charts/longtail-lib/schema/) declares them.

A library chart cannot hand values to its parent (its values.yaml would land under
.Values.longtail-lib), hence a template. Merge rules (sprig mustMergeOverwrite): maps merge key by
key, lists and scalars replace (false, 0 and "" included), and a null removes the key (the
templates' own fallbacks then apply, as with Helm's null; the security contexts stay locked down).
The values schema still sees a null first: where it declares a type, null is rejected.

`global` (image.repository, image.tag) and `enabled` come from a parent chart such as the longtail
umbrella; `enabled` is read by the parent's dependency condition, not here.
*/}}
{{- define "longtail-lib.defaults" -}}
replicaCount: 1
image:
  # Empty: longtail-<chart>, under global.image.registry when set (longtail-lib.image).
  repository: ""
  pullPolicy: IfNotPresent
  # Empty: global.image.tag, else the chart's appVersion.
  tag: ""
# Arguments after the image's ENTRYPOINT ["longtail", "serve"]. Empty: [<chart name>], i.e. `longtail serve <chart>`.
args: []
imagePullSecrets: []
nameOverride: ""
fullnameOverride: ""
serviceAccount:
  create: true
  # The services never talk to the Kubernetes API: no token is mounted.
  automount: false
  annotations: {}
  name: ""
podAnnotations: {}
podLabels: {}
# Locked down. A values file may override single fields (Tilt makes the root filesystem writable).
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
# The root filesystem is read-only; /tmp is an emptyDir of this size.
tmpSizeLimit: 256Mi
workload:
  # Deployment (stateless) or StatefulSet (stable pod names, optional per-pod volumes: persistence.*).
  kind: Deployment
  revisionHistoryLimit: 5
  # podManagementPolicy (StatefulSet only, where the chart's schema has it): Parallel unless set;
  # replicas start together (one consumer-group rebalance, not one each).
  # Empty: a Deployment rolls with maxSurge 25%, maxUnavailable 0 (new pods are ready before old
  # ones drain); a StatefulSet with RollingUpdate (one pod at a time, highest ordinal first).
  updateStrategy: {}
service:
  type: ClusterIP
  # Empty: grpc.port.
  port: null
  annotations: {}
grpc:
  port: 50051
  # healthService (the chart's own): the grpc.health.v1 service name the readiness and startup
  # probes ask for; liveness asks for "" (the server as a whole).
  # SIGTERM: health turns NOT_SERVING, then in-flight calls get this long (keep below terminationGracePeriodSeconds).
  shutdownGraceSeconds: 10
terminationGracePeriodSeconds: 30
# TLS on the gRPC port (GRPC_TLS_*; docs/security.md), on by default. The certificate, key and CA
# come from a Secret with tls.crt, tls.key and ca.crt (what cert-manager writes), mounted read-only;
# the probes then ask a plaintext port that serves only grpc.health.v1 (Kubernetes' gRPC probes
# speak no TLS). enabled: false serves plaintext (GRPC_PLAINTEXT=true): for local experiments only.
tls:
  enabled: true
  # Empty: <fullname>-tls, the Secret of the cert-manager Certificate below.
  existingSecret: ""
  # Client certificates: none (not asked for), optional (verified when presented), require.
  clientAuth: optional
  healthPort: 50052
  # A cert-manager Certificate (cert-manager.io/v1) for the Service's names, into the Secret above.
  certManager:
    enabled: false
    issuerRef:
      name: ""
      kind: Issuer
      group: cert-manager.io
    duration: 2160h
    renewBefore: 360h
    # Names besides the Service's own (<fullname>, .<namespace>, .<namespace>.svc).
    extraDnsNames: []
# Native gRPC probes (grpc.health.v1). Startup: 5 s x 60 = 5 minutes.
probes:
  startup:
    enabled: true
    periodSeconds: 5
    failureThreshold: 60
    timeoutSeconds: 2
  readiness:
    periodSeconds: 5
    failureThreshold: 3
    timeoutSeconds: 2
  liveness:
    periodSeconds: 10
    failureThreshold: 3
    timeoutSeconds: 2
metrics:
  # Prometheus /metrics on this port (METRICS_PORT); disabled sets METRICS_PORT=0.
  enabled: true
  port: 9464
  serviceMonitor:
    # Needs the Prometheus Operator CRDs (monitoring.coreos.com/v1).
    enabled: false
    interval: 30s
    scrapeTimeout: 10s
    # e.g. release: kube-prometheus-stack, to match the Prometheus serviceMonitorSelector
    labels: {}
  dashboards:
    # One ConfigMap per dashboards/*.json, labelled grafana_dashboard: "1" for the Grafana sidecar.
    enabled: false
    # Empty: the release namespace. Set to Grafana's namespace if its sidecar only watches that one.
    namespace: ""
    labels: {}
    annotations: {}
log:
  level: INFO
  # json (for log collectors) or console
  format: json
# Extra plain environment variables (NAME: value), added to the ConfigMap.
env: {}
# Extra variables from existing Secrets: NAME: {name: <secret>, key: <key>}.
secretEnv: {}
# Extra EnvVar objects, verbatim (e.g. valueFrom.fieldRef).
extraEnv: []
resources: {}
autoscaling:
  enabled: false
  minReplicas: 2
  maxReplicas: 6
  targetCPUUtilizationPercentage: 70
  # targetMemoryUtilizationPercentage: 80
  # Extra HPA metrics (autoscaling/v2 MetricSpec), e.g. an External metric on consumer lag via an adapter.
  metrics: []
  # HPA scaling behavior (autoscaling/v2); empty: Kubernetes' defaults.
  behavior: {}
pdb:
  enabled: true
  # An integer or a percentage. minAvailable, when set, takes precedence over maxUnavailable.
  maxUnavailable: 1
  # minAvailable: 1
# The API server itself refuses more than `max` replicas of the workload, however they are asked for
# (`kubectl scale`/`edit`/`patch`, an HPA, helm): a ValidatingAdmissionPolicy and its binding to the
# release's namespace, created where the cluster serves admissionregistration.k8s.io/v1 (Kubernetes
# >= 1.30). Off here; the single-writer charts (trainer, map-vision) turn it on. Both objects are
# cluster-scoped: installing them needs the right to create validatingadmissionpolicies and their
# bindings; without it, set enabled: false (the schema's bound on replicaCount still holds for helm).
replicaLimit:
  enabled: false
  max: 1
  # Said in the refusal, after "runs at most 1 replica: ".
  reason: ""
volumes: []
volumeMounts: []
nodeSelector: {}
tolerations: []
affinity: {}
# Rendered with tpl, so a labelSelector may include the library's selectorLabels (see gateway/ci/external.yaml).
topologySpreadConstraints: []
{{- end }}

{{/*
Sections a chart has only if the service reads them: a section's presence in the values is what
sets its environment (KAFKA_*, S3_*, FLEET_TOKEN_SECRET, OPERATOR_TOKEN_SECRET) or its volume
(persistence). A chart declares one in its values.yaml, usually empty (`kafka: {}`), and gets these
defaults under it; a chart that does not declare it gets nothing (and its schema rejects the key).
*/}}
{{- define "longtail-lib.sections" -}}
kafka:
  # Required: host:port[,host:port...] of the Kafka brokers.
  bootstrapServers: ""
  # Replication factor of the topics the service creates at start (3 on a production cluster).
  replicationFactor: 1
  # min.insync.replicas of those topics (with acks=all, a write is acknowledged once on this many
  # brokers). Empty: 2 from a replication factor of 3 up, else 1. At most replicationFactor.
  minInsyncReplicas: null
s3:
  # Required: host:port of the S3 API (AWS, versitygw, Ceph RGW, ...).
  endpoint: ""
  bucket: longtail
  region: us-east-1
  # TLS to the endpoint.
  secure: false
  # An existing Secret with the credentials:
  #   kubectl create secret generic longtail-s3 --from-literal=access-key=... --from-literal=secret-key=...
  existingSecret:
    name: longtail-s3
    accessKeyKey: access-key
    secretKeyKey: secret-key
fleet:
  # An existing Secret with the key that signs vehicle tokens (HS256, at least 32 characters):
  #   kubectl create secret generic longtail-fleet --from-literal=token-secret="$(openssl rand -hex 32)"
  tokenSecret:
    name: longtail-fleet
    key: token-secret
operator:
  # An existing Secret with the key that signs operator tokens (HS256, at least 32 characters):
  #   kubectl create secret generic longtail-operator --from-literal=token-secret="$(openssl rand -hex 32)"
  tokenSecret:
    name: longtail-operator
    key: token-secret
# A volumeClaimTemplate per pod (workload.kind StatefulSet only), for a service that keeps files.
persistence:
  enabled: false
  size: 1Gi
  # Empty: the cluster's default StorageClass.
  storageClass: ""
  mountPath: /data
  accessModes: [ReadWriteOnce]
{{- end }}

{{/*
Merges the chart's values over the defaults, once, before anything renders: `.Values` is the merged
dict from then on (the bjw-s `common` loader does the same). `longtail-lib.all` calls it; a chart
that includes the library's templates one by one (triton) calls it first.
*/}}
{{- define "longtail-lib.init" -}}
{{- $defaults := fromYaml (include "longtail-lib.defaults" .) }}
{{- $sections := fromYaml (include "longtail-lib.sections" .) }}
{{- if or (hasKey $defaults "Error") (hasKey $sections "Error") }}
{{- fail (printf "longtail-lib: the defaults are not valid YAML: %v %v" ($defaults.Error | default "") ($sections.Error | default "")) }}
{{- end }}
{{- range $name, $section := $sections }}
{{- if hasKey $.Values $name }}
{{- $_ := set $defaults $name $section }}
{{- end }}
{{- end }}
{{- $values := mustMergeOverwrite $defaults (deepCopy .Values) }}
{{- include "longtail-lib.dropNulls" $values }}
{{- $_ := set . "Values" $values }}
{{- end }}

{{/*
Removes every null from a values map, recursively (not inside lists), as Helm removes a key whose
value is null: the templates' fallbacks then apply (the security contexts keep their locked-down
fields), never a literal null in a manifest.
*/}}
{{- define "longtail-lib.dropNulls" -}}
{{- $map := . }}
{{- range $key, $value := $map }}
{{- if kindIs "invalid" $value }}
{{- $_ := unset $map $key }}
{{- else if kindIs "map" $value }}
{{- include "longtail-lib.dropNulls" $value }}
{{- end }}
{{- end }}
{{- end }}

{{/* One default of longtail-lib.defaults, e.g. (include "longtail-lib.default" (list . "securityContext")) | fromYaml. */}}
{{- define "longtail-lib.default" -}}
{{- toYaml (get (fromYaml (include "longtail-lib.defaults" (first .))) (last .)) }}
{{- end }}
