{{/*
ConfigMap with every non-secret environment variable, loaded with envFrom. Secrets never pass
through values: the workload references existing Secrets by name and key (see _workload.tpl).
*/}}
{{/*
A value as an environment string. Helm reads YAML numbers as float64, and Go prints 1048576.0 as
"1.048576e+06", which an int setting would reject: whole numbers are printed as integers.
*/}}
{{- define "longtail-lib.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}
{{- else }}{{ toString . }}
{{- end }}
{{- end }}

{{- define "longtail-lib.configData" -}}
{{- $data := dict }}
{{- $_ := set $data "GRPC_HOST" "0.0.0.0" }}
{{- $_ := set $data "GRPC_PORT" (include "longtail-lib.envValue" .Values.grpc.port) }}
{{- if .Values.grpc.shutdownGraceSeconds }}
{{- $_ := set $data "SHUTDOWN_GRACE_SECONDS" (include "longtail-lib.envValue" .Values.grpc.shutdownGraceSeconds) }}
{{- end }}
{{- with .Values.tls }}
{{- if .enabled }}
{{- $_ := set $data "GRPC_TLS_CERT" "/etc/longtail/tls/tls.crt" }}
{{- $_ := set $data "GRPC_TLS_KEY" "/etc/longtail/tls/tls.key" }}
{{- $_ := set $data "GRPC_TLS_CA" "/etc/longtail/tls/ca.crt" }}
{{- $_ := set $data "GRPC_TLS_CLIENT_AUTH" (toString (.clientAuth | default "optional")) }}
{{- $_ := set $data "GRPC_HEALTH_PORT" (include "longtail-lib.envValue" (.healthPort | default 50052)) }}
{{- else }}
{{- $_ := set $data "GRPC_PLAINTEXT" "true" }}
{{- end }}
{{- end }}
{{- $_ := set $data "METRICS_PORT" (ternary (include "longtail-lib.envValue" .Values.metrics.port) "0" (.Values.metrics.enabled | default false)) }}
{{- with .Values.log }}
{{- with .level }}{{ $_ := set $data "LOG_LEVEL" (toString .) }}{{ end }}
{{- with .format }}{{ $_ := set $data "LOG_FORMAT" (toString .) }}{{ end }}
{{- end }}
{{- with .Values.kafka }}
{{- $_ := set $data "KAFKA_BOOTSTRAP_SERVERS" (required "kafka.bootstrapServers is required (host:port[,host:port...] of the Kafka brokers)" .bootstrapServers) }}
{{- with .replicationFactor }}{{ $_ := set $data "KAFKA_REPLICATION_FACTOR" (include "longtail-lib.envValue" .) }}{{ end }}
{{- with .minInsyncReplicas }}{{ $_ := set $data "KAFKA_MIN_INSYNC_REPLICAS" (include "longtail-lib.envValue" .) }}{{ end }}
{{- end }}
{{- with .Values.s3 }}
{{- if ne (toString .enabled) "false" }}
{{- $_ := set $data "S3_ENDPOINT" (required "s3.endpoint is required (host:port of the S3 API)" .endpoint) }}
{{- with .bucket }}{{ $_ := set $data "S3_BUCKET" (toString .) }}{{ end }}
{{- with .region }}{{ $_ := set $data "S3_REGION" (toString .) }}{{ end }}
{{- $_ := set $data "S3_SECURE" (ternary "true" "false" (.secure | default false)) }}
{{- end }}
{{- end }}
{{- $prefix := include "longtail-lib.settingsPrefix" . }}
{{- $section := include "longtail-lib.settingsKey" . }}
{{- /* Addresses of other services (peer sections), only in charts whose own section they are not. */}}
{{- if ne $section "triton" }}
{{- with .Values.triton }}
{{- $_ := set $data "TRITON_GRPC_ADDR" (required "triton.grpcAddr is required (host:port of Triton's gRPC port: the triton chart's Service, port 8001)" .grpcAddr) }}
{{- end }}
{{- end }}
{{- if ne $section "labelStore" }}
{{- with .Values.labelStore }}
{{- $_ := set $data "LABEL_STORE_ADDR" (required "labelStore.addr is required (host:port of the label-store chart's gRPC Service)" .addr) }}
{{- end }}
{{- end }}
{{- range $key, $value := (get .Values $section) | default dict }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- fail (printf "%s.%s must be a single value: each key of %s becomes one environment variable" $section $key $section) }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $data (printf "%s%s" $prefix ($key | snakecase | upper)) (include "longtail-lib.envValue" $value) }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.env | default dict }}
{{- $_ := set $data $name (include "longtail-lib.envValue" $value) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{- define "longtail-lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
data:
  {{- include "longtail-lib.configData" . | nindent 2 }}
{{- end }}
