{{/*
Expand the name of the chart.
*/}}
{{- define "collab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "collab.fullname" -}}
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

{{/*
A component's name: the full name cut so that "<full name>-<suffix>" stays within
`max` characters. StatefulSets use 52: the controller adds an 11-character
revision hash to the name in a 63-character label.
Usage: include "collab.suffixedName" (dict "root" . "suffix" "postgres" "max" 52)
*/}}
{{- define "collab.suffixedName" -}}
{{- $keep := int (sub .max (add1 (len .suffix))) }}
{{- printf "%s-%s" (include "collab.fullname" .root | trunc $keep | trimSuffix "-") .suffix }}
{{- end }}

{{- define "collab.postgresName" -}}
{{- include "collab.suffixedName" (dict "root" . "suffix" "postgres" "max" 52) }}
{{- end }}

{{- define "collab.redisName" -}}
{{- include "collab.suffixedName" (dict "root" . "suffix" "redis" "max" 52) }}
{{- end }}

{{/* The CloudNativePG Cluster; the operator adds "-rw", "-ro", "-app" and pod numbers. */}}
{{- define "collab.cnpgName" -}}
{{- include "collab.suffixedName" (dict "root" . "suffix" "pg" "max" 50) }}
{{- end }}

{{- define "collab.migrateName" -}}
{{- include "collab.suffixedName" (dict "root" . "suffix" "migrate" "max" 63) }}
{{- end }}

{{- define "collab.configName" -}}
{{- include "collab.suffixedName" (dict "root" . "suffix" "config" "max" 63) }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "collab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "collab.labels" -}}
helm.sh/chart: {{ include "collab.chart" . }}
{{ include "collab.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: collab
{{- end }}

{{/*
Selector labels shared by every component of the release.
*/}}
{{- define "collab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "collab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component labels. The component label is part of every selector so the
app Service never selects database pods (they share name and instance).
Usage: include "collab.componentLabels" (dict "root" . "component" "server")
*/}}
{{- define "collab.componentLabels" -}}
{{ include "collab.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "collab.componentSelectorLabels" -}}
{{ include "collab.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "collab.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "collab.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The app image, by digest when one is given. */}}
{{- define "collab.image" -}}
{{- include "collab.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/*
Any image reference: "repository@digest" when a digest is given (the tag is then
only informative and left out), else "repository:tag".
Usage: include "collab.imageRef" (dict "image" .Values.postgres.image)
*/}}
{{- define "collab.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .defaultTag) }}
{{- end }}
{{- end }}

{{/*
Where database and Redis containers find their passwords: files from the Secret,
never environment variables.
*/}}
{{- define "collab.secretsDir" -}}
/run/secrets/collab
{{- end }}

{{/* The Secret holding the JWT key and passwords: the operator's own, or ours. */}}
{{- define "collab.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "collab.fullname" .) }}
{{- end }}

{{/*
The sentinels of the bundled Redis in Sentinel mode, one redis:// URL each; the
password in them is the master's (the sentinels share it).
*/}}
{{- define "collab.redisSentinelUrls" -}}
{{- $name := include "collab.redisName" . }}
{{- $urls := list }}
{{- range $i := until (int .Values.redis.sentinel.replicas) }}
{{- $urls = append $urls (printf "redis://:$(REDIS_PASSWORD)@%s-%d.%s.%s.svc:26379" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* What the bundled Redis's start scripts need to find each other. */}}
{{- define "collab.redisSentinelEnv" -}}
{{- $name := include "collab.redisName" . -}}
- name: REDIS_NAME
  value: {{ $name }}
- name: REDIS_DOMAIN
  value: {{ printf "%s.%s.svc" $name .Release.Namespace }}
- name: REDIS_REPLICAS
  value: {{ .Values.redis.sentinel.replicas | quote }}
- name: SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.masterName | quote }}
{{- end }}

{{/* Whether this chart runs its own Redis (every mode but external). */}}
{{- define "collab.bundledRedis" -}}
{{- if ne .Values.database.mode "external" }}true{{- end }}
{{- end }}

{{/* The effective minimum number of app pods (the HPA floor when autoscaling). */}}
{{- define "collab.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
Seconds Kubernetes waits between the preStop hook starting and SIGKILL: the
preStop sleep, then uvicorn's graceful shutdown, then a margin. Derived rather
than configured so it can never be shorter than the two it must cover.
*/}}
{{- define "collab.terminationGracePeriodSeconds" -}}
{{- $c := .Values.config }}
{{- add .Values.lifecycle.preStopSleepSeconds (int (ceil $c.gracefulShutdownSeconds)) .Values.lifecycle.terminationGraceMarginSeconds }}
{{- end }}

{{/*
Host list of the bundled PostgreSQL pods ("h0:5432,h1:5432"). Listing every pod
lets asyncpg find whichever one is primary after a failover
(target_session_attrs picks by role; architecture rule 10).
*/}}
{{- define "collab.postgresHosts" -}}
{{- $name := include "collab.postgresName" . }}
{{- $hosts := list }}
{{- range $i := until (int .Values.postgres.replicas) }}
{{- $hosts = append $hosts (printf "%s-%d.%s-hl.%s.svc:5432" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- join "," $hosts }}
{{- end }}

{{/*
Environment shared by the app pods and the migration Job: connection URLs and
secrets. Kubernetes expands $(VAR) from variables listed earlier, so the
passwords come first and never appear in the pod spec. Generated passwords are
alphanumeric, hence safe inside a URL; see docs/deploy-aks.md for existingSecret.
*/}}
{{- define "collab.connectionEnv" -}}
{{- $secret := include "collab.secretName" . }}
{{- $mode := .Values.database.mode -}}
- name: COLLAB_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: jwt-secret
{{- if eq $mode "external" }}
- name: COLLAB_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: database-url
- name: COLLAB_DATABASE_READ_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: database-read-url
      optional: true
- name: COLLAB_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-url
- name: COLLAB_REDIS_MODE
  value: {{ .Values.external.redisMode | quote }}
{{- if eq .Values.external.redisMode "sentinel" }}
- name: COLLAB_REDIS_SENTINEL_MASTER
  value: {{ .Values.external.redisSentinelMaster | quote }}
- name: COLLAB_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-sentinel-password
      optional: true
{{- end }}
{{- else }}
{{- if eq $mode "bundled" }}
{{- $pg := .Values.postgres }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: database-password
- name: COLLAB_DATABASE_URL
  value: {{ printf "postgresql://%s:$(DB_PASSWORD)@%s/%s?target_session_attrs=read-write" $pg.username (include "collab.postgresHosts" .) $pg.database | quote }}
{{- if gt (int $pg.replicas) 1 }}
- name: COLLAB_DATABASE_READ_URL
  value: {{ printf "postgresql://%s:$(DB_PASSWORD)@%s/%s?target_session_attrs=prefer-standby" $pg.username (include "collab.postgresHosts" .) $pg.database | quote }}
{{- end }}
{{- else }}
{{- $cnpg := .Values.cloudnativepg }}
{{- $cluster := include "collab.cnpgName" . }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $cnpg.appSecret | default (printf "%s-app" $cluster) }}
      key: password
- name: COLLAB_DATABASE_URL
  value: {{ printf "postgresql://%s:$(DB_PASSWORD)@%s-rw.%s.svc:5432/%s?target_session_attrs=read-write" $cnpg.owner $cluster .Release.Namespace $cnpg.database | quote }}
{{- if gt (int $cnpg.instances) 1 }}
- name: COLLAB_DATABASE_READ_URL
  value: {{ printf "postgresql://%s:$(DB_PASSWORD)@%s-ro.%s.svc:5432/%s" $cnpg.owner $cluster .Release.Namespace $cnpg.database | quote }}
{{- end }}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-password
{{- if eq .Values.redis.mode "sentinel" }}
- name: COLLAB_REDIS_MODE
  value: sentinel
- name: COLLAB_REDIS_URL
  value: {{ include "collab.redisSentinelUrls" . | quote }}
- name: COLLAB_REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.masterName | quote }}
- name: COLLAB_REDIS_SENTINEL_PASSWORD
  value: "$(REDIS_PASSWORD)"
{{- else }}
- name: COLLAB_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s.%s.svc:6379/0" (include "collab.redisName" .) .Release.Namespace | quote }}
{{- end }}
{{- end }}
{{- if .Values.bootstrapAdmin.username }}
- name: COLLAB_BOOTSTRAP_ADMIN_USERNAME
  value: {{ .Values.bootstrapAdmin.username | quote }}
- name: COLLAB_BOOTSTRAP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: bootstrap-admin-password
{{- end }}
{{- end }}

{{/*
checkov reads this annotation as a justified skip. The server reads its JWT key and
connection URLs from COLLAB_* environment variables only (collab/settings.py), so
the app and migration containers get them through secretKeyRef; PostgreSQL and
Redis read theirs from mounted files.
*/}}
{{- define "collab.secretEnvSkip" -}}
checkov.io/skip1: "CKV_K8S_35=the server reads its secrets from COLLAB_* variables only; database and Redis pods use files"
{{- end }}

{{/*
checkov's high-uid rule (CKV_K8S_40), skipped with its reason while a database
pod keeps the official image's uid 999: PostgreSQL opens only a data directory
owned by its own uid, so a different uid cannot start on volumes initialized as
999. A uid of 10000 or more (postgres/redis.securityContext) drops the skip.
Usage: include "collab.lowUidSkip" .Values.postgres.securityContext
*/}}
{{- define "collab.lowUidSkip" -}}
{{- if lt (int .runAsUser) 10000 -}}
checkov.io/skip1: "CKV_K8S_40=uid 999 owns the data volumes of the official postgres and redis images"
{{- end }}
{{- end }}

{{/* Security context of every container: the "restricted" Pod Security Standard. */}}
{{- define "collab.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Pod security context for a numeric non-root user.
Usage: include "collab.podSecurityContext" .Values.securityContext
*/}}
{{- define "collab.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Cross-field checks JSON Schema cannot express. Called from the Deployment so a
bad combination fails the whole render with a message naming the values.
*/}}
{{- define "collab.validate" -}}
{{- $c := .Values.config }}
{{- $s := .Values.redis.sentinel }}
{{- if and (eq .Values.redis.mode "sentinel") (gt (int $s.quorum) (int $s.replicas)) }}
{{- fail "redis.sentinel.quorum must not exceed redis.sentinel.replicas" }}
{{- end }}
{{- if and (eq .Values.database.mode "external") (eq .Values.external.redisMode "sentinel") (not .Values.external.redisSentinelMaster) }}
{{- fail "external.redisMode=sentinel needs external.redisSentinelMaster" }}
{{- end }}
{{- if lt (int $c.leaseTtlMs) (mul 2 (int $c.heartbeatMs)) }}
{{- fail "config.leaseTtlMs must be at least twice config.heartbeatMs (COLLAB_LEASE_TTL_MS rule)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.containerPort) }}
{{- fail "metrics.port must differ from containerPort: /metrics must not be served on the routed port" }}
{{- end }}
{{- $mode := .Values.database.mode }}
{{- if and (eq $mode "bundled") .Values.postgres.synchronousReplication.enabled (lt (int .Values.postgres.replicas) 2) }}
{{- fail "postgres.synchronousReplication.enabled needs postgres.replicas >= 2 (a standby to confirm commits)" }}
{{- end }}
{{- if and (eq $mode "cloudnativepg") .Values.cloudnativepg.synchronous.enabled (lt (int .Values.cloudnativepg.instances) 2) }}
{{- fail "cloudnativepg.synchronous.enabled needs cloudnativepg.instances >= 2" }}
{{- end }}
{{- if and (eq $mode "external") (not .Values.secrets.existingSecret) (not (and .Values.external.databaseUrl .Values.external.redisUrl)) }}
{{- fail "database.mode=external needs secrets.existingSecret, or both external.databaseUrl and external.redisUrl" }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.autoscaling.connectionsPerPod.enabled (not .Values.autoscaling.connectionsPerPod.averageValue) }}
{{- fail "autoscaling.connectionsPerPod.averageValue is required when the connections metric is enabled" }}
{{- end }}
{{- end }}
