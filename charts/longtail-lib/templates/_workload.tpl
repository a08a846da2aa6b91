{{/*
The locked-down defaults of _defaults.tpl; a service's values may add to or override single fields
(mergeOverwrite), and even `securityContext: null` keeps the safe settings.
*/}}
{{- define "longtail-lib.podSecurityContext" -}}
{{- $defaults := fromYaml (include "longtail-lib.default" (list . "podSecurityContext")) }}
{{- toYaml (mergeOverwrite $defaults (deepCopy (.Values.podSecurityContext | default dict))) }}
{{- end }}

{{- define "longtail-lib.securityContext" -}}
{{- $defaults := fromYaml (include "longtail-lib.default" (list . "securityContext")) }}
{{- toYaml (mergeOverwrite $defaults (deepCopy (.Values.securityContext | default dict))) }}
{{- end }}

{{/* A native gRPC probe (grpc.health.v1): `service` "" asks for the server as a whole. */}}
{{- define "longtail-lib.grpcProbe" -}}
{{- $probe := .probe | default dict -}}
grpc:
  port: {{ .port }}
  {{- if .service }}
  service: {{ .service | quote }}
  {{- end }}
{{- with $probe.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ $probe.periodSeconds | default 10 }}
timeoutSeconds: {{ $probe.timeoutSeconds | default 2 }}
failureThreshold: {{ $probe.failureThreshold | default 3 }}
{{- end }}

{{- define "longtail-lib.env" -}}
{{- with .Values.s3 }}
{{- if ne (toString .enabled) "false" }}
{{- $secret := .existingSecret | default dict }}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "s3.existingSecret.name is required (a Secret holding the S3 credentials)" $secret.name }}
      key: {{ $secret.accessKeyKey | default "access-key" }}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $secret.secretKeyKey | default "secret-key" }}
{{- end }}
{{- end }}
{{- with .Values.database }}
{{- if eq (toString .type) "postgresql" }}
{{- $secret := .existingSecret | default dict }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret.name is required (a Secret holding DATABASE_URL)" $secret.name }}
      key: {{ $secret.key | default "database-url" }}
{{- end }}
{{- end }}
{{- with (.Values.fleet | default dict).tokenSecret }}
- name: FLEET_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "fleet.tokenSecret.name is required (a Secret holding the fleet token signing key)" .name }}
      key: {{ .key | default "token-secret" }}
{{- end }}
{{- with (.Values.operator | default dict).tokenSecret }}
- name: OPERATOR_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "operator.tokenSecret.name is required (a Secret holding the operator token signing key)" .name }}
      key: {{ .key | default "token-secret" }}
      {{- if .optional }}
      optional: true
      {{- end }}
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

{{- define "longtail-lib.workload" -}}
{{- $kind := include "longtail-lib.workloadKind" . }}
{{- $workload := .Values.workload | default dict }}
{{- $persistence := .Values.persistence | default dict }}
{{- $probes := .Values.probes | default dict }}
{{- $fullname := include "longtail-lib.fullname" . }}
{{- $tls := .Values.tls | default dict }}
{{- $probePort := ternary ($tls.healthPort | default 50052) .Values.grpc.port (eq (toString $tls.enabled) "true") }}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ $fullname }}
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
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ $fullname }}-headless
  podManagementPolicy: {{ $workload.podManagementPolicy | default "Parallel" }}
  updateStrategy:
    {{- toYaml ($workload.updateStrategy | default (dict "type" "RollingUpdate")) | nindent 4 }}
  {{- else }}
  strategy:
    {{- toYaml ($workload.updateStrategy | default (dict "type" "RollingUpdate" "rollingUpdate" (dict "maxSurge" "25%" "maxUnavailable" 0))) | nindent 4 }}
  {{- end }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include "longtail-lib.configmap" . | sha256sum }}
        {{- with .Values.podAnnotations }}
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
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | default 30 }}
      securityContext:
        {{- include "longtail-lib.podSecurityContext" . | nindent 8 }}
      containers:
        - name: {{ .Chart.Name }}
          image: {{ include "longtail-lib.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy | default "IfNotPresent" }}
          args:
            {{- toYaml (.Values.args | default (list .Chart.Name)) | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ .Values.grpc.port }}
              protocol: TCP
            {{- if $tls.enabled }}
            - name: health
              containerPort: {{ $probePort }}
              protocol: TCP
            {{- end }}
            {{- if .Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ .Values.metrics.port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
          {{- with include "longtail-lib.env" . | trim }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          {{- $health := .Values.grpc.healthService | default "" }}
          {{- $startup := $probes.startup | default dict }}
          {{- if ne (toString $startup.enabled) "false" }}
          startupProbe:
            {{- include "longtail-lib.grpcProbe" (dict "port" $probePort "service" $health "probe" (mergeOverwrite (dict "periodSeconds" 2 "failureThreshold" 60) $startup)) | nindent 12 }}
          {{- end }}
          readinessProbe:
            {{- include "longtail-lib.grpcProbe" (dict "port" $probePort "service" $health "probe" (mergeOverwrite (dict "periodSeconds" 5) ($probes.readiness | default dict))) | nindent 12 }}
          livenessProbe:
            {{- include "longtail-lib.grpcProbe" (dict "port" $probePort "service" "" "probe" ($probes.liveness | default dict)) | nindent 12 }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "longtail-lib.securityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $persistence.enabled }}
            - name: data
              mountPath: {{ $persistence.mountPath | default "/data" }}
            {{- end }}
            {{- if $tls.enabled }}
            - name: tls
              mountPath: /etc/longtail/tls
              readOnly: true
            {{- end }}
            {{- with .Values.volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit | default "256Mi" }}
        {{- if $tls.enabled }}
        - name: tls
          secret:
            secretName: {{ include "longtail-lib.tlsSecret" . }}
            defaultMode: 0440
        {{- end }}
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
  {{- if and (eq $kind "StatefulSet") $persistence.enabled }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "longtail-lib.selectorLabels" . | nindent 10 }}
      spec:
        accessModes:
          {{- toYaml ($persistence.accessModes | default (list "ReadWriteOnce")) | nindent 10 }}
        {{- with $persistence.storageClass }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $persistence.size | default "1Gi" | quote }}
  {{- end }}
{{- end }}

{{/* The Secret with the gRPC port's certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "longtail-lib.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "longtail-lib.fullname" .)) }}
{{- end }}

{{/*
A cert-manager Certificate for the Service's names (tls.certManager.enabled): cert-manager keeps
the Secret the workload mounts issued and renewed; its ca.crt is the issuer's CA.
*/}}
{{- define "longtail-lib.certificate" -}}
{{- $tls := .Values.tls | default dict }}
{{- $cm := $tls.certManager | default dict }}
{{- if and $tls.enabled $cm.enabled }}
{{- $fullname := include "longtail-lib.fullname" . }}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "longtail-lib.labels" . | nindent 4 }}
spec:
  secretName: {{ include "longtail-lib.tlsSecret" . }}
  duration: {{ $cm.duration | default "2160h" }}
  renewBefore: {{ $cm.renewBefore | default "360h" }}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
  usages: [server auth, client auth]
  dnsNames:
    - {{ $fullname }}
    - {{ $fullname }}.{{ .Release.Namespace }}
    - {{ $fullname }}.{{ .Release.Namespace }}.svc
    {{- range $cm.extraDnsNames }}
    - {{ . }}
    {{- end }}
  issuerRef:
    name: {{ required "tls.certManager.issuerRef.name is required (a cert-manager Issuer or ClusterIssuer)" $cm.issuerRef.name }}
    kind: {{ $cm.issuerRef.kind | default "Issuer" }}
    group: {{ $cm.issuerRef.group | default "cert-manager.io" }}
{{- end }}
{{- end }}
