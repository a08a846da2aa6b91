{{- define "longtail-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type | default "ClusterIP" }}
  selector:
    {{- include "longtail-lib.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .Values.service.port | default .Values.grpc.port }}
      targetPort: grpc
      protocol: TCP
    {{- if .Values.metrics.enabled }}
    - name: metrics
      port: {{ .Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
    {{- end }}
{{- end }}

{{/* A StatefulSet's governing Service: stable per-pod DNS names (<pod>.<fullname>-headless). gRPC only, so a ServiceMonitor never scrapes a pod twice. */}}
{{- define "longtail-lib.headlessService" -}}
{{- if eq (include "longtail-lib.workloadKind" .) "StatefulSet" }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "longtail-lib.fullname" . }}-headless
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "longtail-lib.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .Values.grpc.port }}
      targetPort: grpc
      protocol: TCP
{{- end }}
{{- end }}

{{- define "longtail-lib.serviceaccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "longtail-lib.serviceAccountName" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automount | default false }}
{{- end }}
{{- end }}
