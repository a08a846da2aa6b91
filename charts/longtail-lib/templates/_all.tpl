{{/*
The one entry point. A service chart's only template is:

    {{ include "longtail-lib.all" . }}

It merges the chart's values over the library's defaults (longtail-lib.init, _defaults.tpl), then
renders, from the merged values: ServiceAccount, ConfigMap (non-secret environment),
Service (+ a headless Service for a StatefulSet), a cert-manager Certificate (tls.certManager.enabled), the workload (Deployment, or StatefulSet when
workload.kind is StatefulSet), HPA (autoscaling.enabled), PDB (pdb.enabled), the replica limit's admission policy
(replicaLimit.enabled), ServiceMonitor
(metrics.serviceMonitor.enabled) and Grafana dashboard ConfigMaps (metrics.dashboards.enabled).
*/}}
{{- define "longtail-lib.all" -}}
{{- include "longtail-lib.init" . }}
{{- include "longtail-lib.validate" . }}
{{- range $name := list "serviceaccount" "configmap" "service" "headlessService" "certificate" "workload" "hpa" "pdb" "replicaLimit" "servicemonitor" "dashboards" }}
{{- $doc := include (printf "longtail-lib.%s" $name) $ | trim }}
{{- if $doc }}
{{- if not (hasPrefix "---" $doc) }}
---
{{- end }}
{{ $doc }}
{{- end }}
{{- end }}
{{- end }}
