{{/* HorizontalPodAutoscaler: the workload then omits `replicas`, so a helm upgrade never fights the HPA. */}}
{{- define "longtail-lib.hpa" -}}
{{- $a := .Values.autoscaling | default dict }}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ include "longtail-lib.workloadKind" . }}
    name: {{ include "longtail-lib.fullname" . }}
  minReplicas: {{ $a.minReplicas | default 1 }}
  maxReplicas: {{ $a.maxReplicas }}
  {{- $metrics := list }}
  {{- with $a.targetCPUUtilizationPercentage }}
  {{- $metrics = append $metrics (dict "type" "Resource" "resource" (dict "name" "cpu" "target" (dict "type" "Utilization" "averageUtilization" .))) }}
  {{- end }}
  {{- with $a.targetMemoryUtilizationPercentage }}
  {{- $metrics = append $metrics (dict "type" "Resource" "resource" (dict "name" "memory" "target" (dict "type" "Utilization" "averageUtilization" .))) }}
  {{- end }}
  {{- $metrics = concat $metrics ($a.metrics | default list) }}
  {{- with $metrics }}
  metrics:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* PodDisruptionBudget: pdb.minAvailable when set, else pdb.maxUnavailable (default 1). */}}
{{- define "longtail-lib.pdb" -}}
{{- $p := .Values.pdb | default dict }}
{{- if $p.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $p.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "longtail-lib.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
