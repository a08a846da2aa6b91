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

{{/*
replicaLimit: the API server itself refuses more than replicaLimit.max replicas of this workload,
however they are asked for (helm, `kubectl scale`/`edit`/`patch`, an HPA): a ValidatingAdmissionPolicy
on the workload and its scale subresource, bound to the release's namespace. Both are
cluster-scoped, so their name carries the namespace. Created only where the cluster serves
admissionregistration.k8s.io/v1 (Kubernetes >= 1.30); the schema's bound on replicaCount holds either way.
*/}}
{{- define "longtail-lib.replicaLimit" -}}
{{- $l := .Values.replicaLimit | default dict }}
{{- if and $l.enabled (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy") }}
{{- $name := printf "%s.%s.replicas.longtail" (include "longtail-lib.fullname" .) .Release.Namespace }}
{{- $kind := include "longtail-lib.workloadKind" . }}
{{- $resource := printf "%ss" (lower $kind) }}
{{- $max := int $l.max }}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: [{{ $resource | quote }}, {{ printf "%s/scale" $resource | quote }}]
        resourceNames: [{{ include "longtail-lib.fullname" . | quote }}]
  validations:
    # a Deployment/StatefulSet and an autoscaling/v1 Scale both carry spec.replicas (omitted when 0 in a Scale)
    - expression: "!has(object.spec.replicas) || object.spec.replicas <= {{ $max }}"
      messageExpression: {{ printf "'%s %s runs at most %d replica%s%s; asked for ' + string(object.spec.replicas)" $kind (include "longtail-lib.fullname" .) $max (ternary "" "s" (eq $max 1)) (ternary (printf ": %s" (replace "'" "\\'" $l.reason)) "" (not (empty $l.reason))) | quote }}
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  policyName: {{ $name }}
  validationActions: ["Deny"]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {{ .Release.Namespace }}
{{- end }}
{{- end }}
