{{/*
Prometheus Operator ServiceMonitor (off by default). Created only where the cluster serves
monitoring.coreos.com/v1 ServiceMonitor (the operator's CRDs): elsewhere the same values install
cleanly without it. `helm template` knows no cluster: pass --api-versions monitoring.coreos.com/v1/ServiceMonitor.
*/}}
{{- define "longtail-lib.servicemonitor" -}}
{{- $sm := (.Values.metrics.serviceMonitor | default dict) }}
{{- if and .Values.metrics.enabled $sm.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  selector:
    matchLabels:
      {{- include "longtail-lib.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      # Our metrics carry a `service` label (gateway, trigger-evaluator, ...); without this the
      # operator's target label `service` (the Kubernetes Service name) would replace it.
      honorLabels: true
      interval: {{ $sm.interval | default "30s" }}
      scrapeTimeout: {{ $sm.scrapeTimeout | default "10s" }}
{{- end }}
{{- end }}

{{/*
One ConfigMap per dashboards/*.json file of the service chart, labelled for the Grafana sidecar
(kube-prometheus-stack's default label grafana_dashboard: "1"). `.Files` is the service chart's.
*/}}
{{- define "longtail-lib.dashboards" -}}
{{- $d := (.Values.metrics.dashboards | default dict) }}
{{- if $d.enabled }}
{{- $root := . }}
{{- $files := .Files.Glob "dashboards/*.json" }}
{{- if not $files }}
{{- fail (printf "metrics.dashboards.enabled is true but chart %s has no dashboards/*.json" .Chart.Name) }}
{{- end }}
{{- range $path, $_ := $files }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ printf "%s-dashboard-%s" (include "longtail-lib.fullname" $root) (base $path | trimSuffix ".json") | trunc 63 | trimSuffix "-" }}
  {{- with $d.namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "longtail-lib.labels" $root | nindent 4 }}
    grafana_dashboard: "1"
    {{- with $d.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $d.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  {{ base $path }}: |-
    {{- $root.Files.Get $path | trim | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}
