{{/*
The stock Triton image: the image is always .Values.image (global.image is the longtail image and
does not apply here).
*/}}
{{- define "triton.image" -}}
{{- printf "%s:%s" .Values.image.repository (required "image.tag is required (a Triton release, e.g. 25.06-py3)" .Values.image.tag | toString) }}
{{- end }}

{{/* s3://[https://]host:port/bucket/prefix, Triton's form for an S3 endpoint other than AWS's default. */}}
{{- define "triton.modelRepository" -}}
{{- $s3 := .Values.s3 }}
{{- $endpoint := required "s3.endpoint is required (host:port of the S3 API holding the model repository)" $s3.endpoint }}
{{- $prefix := trimAll "/" ($s3.prefix | default "models") }}
{{- printf "s3://%s%s/%s/%s" (ternary "https://" "" ($s3.secure | default false)) $endpoint $s3.bucket $prefix }}
{{- end }}

{{- define "triton.args" -}}
{{- $t := .Values.triton | default dict }}
{{- $args := list (printf "--model-repository=%s" (include "triton.modelRepository" .)) "--model-control-mode=explicit" }}
{{- range $t.loadModels | default list }}
{{- $args = append $args (printf "--load-model=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--strict-readiness=%t" (ne (toString $t.strictReadiness) "false")) }}
{{- $args = append $args (printf "--exit-on-error=%t" (ne (toString $t.exitOnError) "false")) }}
{{- $args = append $args (printf "--exit-timeout-secs=%d" (int ($t.exitTimeoutSeconds | default 30))) }}
{{- $args = append $args (printf "--http-port=%d" (int .Values.http.port)) }}
{{- $args = append $args (printf "--grpc-port=%d" (int .Values.grpc.port)) }}
{{- if .Values.metrics.enabled }}
{{- $args = append $args "--allow-metrics=true" }}
{{- $args = append $args (printf "--metrics-port=%d" (int .Values.metrics.port)) }}
{{- else }}
{{- $args = append $args "--allow-metrics=false" }}
{{- end }}
{{- $args = append $args (printf "--log-verbose=%d" (int ($t.logVerbose | default 0))) }}
{{- range $t.extraArgs | default list }}
{{- if regexMatch "^--(model-control-mode|model-repository|model-store|load-model)([=]|$)" . }}
{{- fail (printf "triton.extraArgs must not set %s: the chart sets the model repository and explicit model control (use s3.* and triton.loadModels)" .) }}
{{- end }}
{{- end }}
{{- toYaml (concat $args ($t.extraArgs | default list)) }}
{{- end }}

{{- define "triton.env" -}}
{{- $s3 := .Values.s3 }}
{{- $secret := $s3.existingSecret | default dict }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ required "s3.existingSecret.name is required (a Secret holding the S3 credentials)" $secret.name }}
      key: {{ $secret.accessKeyKey | default "access-key" }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $secret.secretKeyKey | default "secret-key" }}
- name: AWS_DEFAULT_REGION
  value: {{ $s3.region | default "us-east-1" | quote }}
{{- range $name, $value := .Values.env | default dict }}
- name: {{ $name }}
  value: {{ include "longtail-lib.envValue" $value | quote }}
{{- end }}
{{- range $name, $ref := .Values.secretEnv | default dict }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "triton.httpProbe" -}}
{{- $probe := .probe | default dict -}}
httpGet:
  path: {{ .path }}
  port: http
{{- with $probe.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ $probe.periodSeconds | default 10 }}
timeoutSeconds: {{ $probe.timeoutSeconds | default 2 }}
failureThreshold: {{ $probe.failureThreshold | default 3 }}
{{- end }}

{{- define "triton.ports" -}}
- name: http
  port: {{ .Values.http.port }}
  targetPort: http
  protocol: TCP
- name: grpc
  port: {{ .Values.grpc.port }}
  targetPort: grpc
  protocol: TCP
{{- end }}

{{- define "triton.service" -}}
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
    {{- include "triton.ports" . | nindent 4 }}
    {{- if .Values.metrics.enabled }}
    - name: metrics
      port: {{ .Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
    {{- end }}
{{- end }}

{{/*
Per-pod addresses (<fullname>-headless resolves to every pod): in explicit model-control mode a
load_model call reaches one pod only, so a client that loads models must address each replica.
HTTP and gRPC only, so a ServiceMonitor never scrapes a pod twice.
*/}}
{{- define "triton.headlessService" -}}
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
    {{- include "triton.ports" . | nindent 4 }}
{{- end }}

{{- define "triton.deployment" -}}
{{- $workload := .Values.workload | default dict }}
{{- $probes := .Values.probes | default dict }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "longtail-lib.fullname" . }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $workload.revisionHistoryLimit | default 5 }}
  selector:
    matchLabels:
      {{- include "longtail-lib.selectorLabels" . | nindent 6 }}
  strategy:
    {{- toYaml ($workload.updateStrategy | default (dict "type" "RollingUpdate" "rollingUpdate" (dict "maxSurge" "25%" "maxUnavailable" 0))) | nindent 4 }}
  template:
    metadata:
      {{- with .Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      labels:
        {{- include "longtail-lib.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      serviceAccountName: {{ include "longtail-lib.serviceAccountName" . }}
      automountServiceAccountToken: {{ .Values.serviceAccount.automount | default false }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | default 60 }}
      securityContext:
        {{- include "longtail-lib.podSecurityContext" . | nindent 8 }}
      containers:
        - name: triton
          image: {{ include "triton.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
          command: [tritonserver]
          args:
            {{- include "triton.args" . | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .Values.http.port }}
              protocol: TCP
            - name: grpc
              containerPort: {{ .Values.grpc.port }}
              protocol: TCP
            {{- if .Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ .Values.metrics.port }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "triton.env" . | trim | nindent 12 }}
          {{- $startup := $probes.startup | default dict }}
          {{- if ne (toString $startup.enabled) "false" }}
          startupProbe:
            {{- include "triton.httpProbe" (dict "path" "/v2/health/ready" "probe" (mergeOverwrite (dict "periodSeconds" 5 "failureThreshold" 60) $startup)) | nindent 12 }}
          {{- end }}
          readinessProbe:
            {{- include "triton.httpProbe" (dict "path" "/v2/health/ready" "probe" (mergeOverwrite (dict "periodSeconds" 5) ($probes.readiness | default dict))) | nindent 12 }}
          livenessProbe:
            {{- include "triton.httpProbe" (dict "path" "/v2/health/live" "probe" ($probes.liveness | default dict)) | nindent 12 }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "longtail-lib.securityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: shm
              mountPath: /dev/shm
            {{- with .Values.volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        # Triton copies each model it loads from S3 into a temporary directory under /tmp.
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit | default "4Gi" }}
        # Python-backend models exchange tensors with their stub process through /dev/shm.
        - name: shm
          emptyDir:
            medium: Memory
            sizeLimit: {{ .Values.shmSizeLimit | default "256Mi" }}
        {{- with .Values.volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- tpl (toYaml .) $ | nindent 8 }}
      {{- end }}
{{- end }}
