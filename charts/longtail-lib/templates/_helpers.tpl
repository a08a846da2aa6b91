{{/*
Names, labels and small helpers. Every template takes the service chart's root context (`.`),
so `.Chart`, `.Values`, `.Release` and `.Files` are the service chart's own.
*/}}

{{- define "longtail-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, as `helm create`: the release name alone when it already contains the chart name. */}}
{{- define "longtail-lib.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "longtail-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag actually deployed: image.tag, else global.image.tag, else the chart's appVersion. */}}
{{- define "longtail-lib.imageTag" -}}
{{- $global := (.Values.global | default dict).image | default dict }}
{{- coalesce .Values.image.tag $global.tag .Chart.AppVersion | toString }}
{{- end }}

{{/*
The image: image.repository, else the service's own image `longtail-<chart>` (a Dockerfile target of
the same name), under global.image.registry when set. The old global.image.repository (one image for
every service) is refused by the schema, so a values file written for it fails loudly.
*/}}
{{- define "longtail-lib.image" -}}
{{- $global := (.Values.global | default dict).image | default dict }}
{{- $repository := .Values.image.repository }}
{{- if not $repository }}
{{- $repository = printf "longtail-%s" .Chart.Name }}
{{- with $global.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end }}
{{- end }}
{{- printf "%s:%s" $repository (include "longtail-lib.imageTag" .) }}
{{- end }}

{{/* Selector labels: name + instance, never anything that changes between releases. */}}
{{- define "longtail-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "longtail-lib.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "longtail-lib.labels" -}}
helm.sh/chart: {{ include "longtail-lib.chart" . }}
{{ include "longtail-lib.selectorLabels" . }}
app.kubernetes.io/version: {{ regexReplaceAll "[^-A-Za-z0-9_.]" (include "longtail-lib.imageTag" .) "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: longtail
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "longtail-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "longtail-lib.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "longtail-lib.workloadKind" -}}
{{- ((.Values.workload | default dict).kind | default "Deployment") }}
{{- end }}

{{/*
The values section that becomes the service's own settings: the chart name in lowerCamelCase
(gateway -> gateway, trigger-evaluator -> triggerEvaluator). Its keys become environment
variables prefixed with the chart name in UPPER_SNAKE_CASE (maxBatchFrames -> GATEWAY_MAX_BATCH_FRAMES),
which is what the service's pydantic settings class reads (env_prefix="GATEWAY_").
*/}}
{{- define "longtail-lib.settingsKey" -}}
{{- $parts := splitList "-" .Chart.Name }}
{{- $out := first $parts }}
{{- range rest $parts }}{{ $out = printf "%s%s" $out (title .) }}{{ end }}
{{- $out }}
{{- end }}

{{- define "longtail-lib.settingsPrefix" -}}
{{- printf "%s_" (.Chart.Name | replace "-" "_" | upper) }}
{{- end }}

{{/* Checks that cannot be expressed in a values schema; fails the render with a message naming the value. */}}
{{- define "longtail-lib.validate" -}}
{{- $kind := include "longtail-lib.workloadKind" . }}
{{- if not (has $kind (list "Deployment" "StatefulSet")) }}
{{- fail (printf "workload.kind must be Deployment or StatefulSet, got %q" $kind) }}
{{- end }}
{{- $persistence := .Values.persistence | default dict }}
{{- if and $persistence.enabled (ne $kind "StatefulSet") }}
{{- fail "persistence.enabled needs workload.kind: StatefulSet (a Deployment's replicas would share one volume)" }}
{{- end }}
{{- $autoscaling := .Values.autoscaling | default dict }}
{{- if and $autoscaling.enabled (lt (int $autoscaling.maxReplicas) (int $autoscaling.minReplicas)) }}
{{- fail (printf "autoscaling.maxReplicas (%v) is below autoscaling.minReplicas (%v)" $autoscaling.maxReplicas $autoscaling.minReplicas) }}
{{- end }}
{{- end }}
