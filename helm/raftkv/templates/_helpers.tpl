{{/*
Names. <fullname> is at most 40 characters so that every derived name stays a valid DNS
label (63): <fullname>-raftnode-headless (Service), <fullname>-raftnode-N (pod host names),
and the StatefulSet name stays under 52 (its controller-revision-hash label).
*/}}
{{- define "raftkv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "raftkv.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "raftkv.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "raftkv.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* The StatefulSet, and the prefix of every member (pod) name: <fullname>-raftnode. */}}
{{- define "raftkv.raftnode.fullname" -}}
{{- printf "%s-raftnode" (include "raftkv.fullname" .) }}
{{- end }}

{{/* The headless Service governing the StatefulSet: every member's DNS name lives under it. */}}
{{- define "raftkv.raftnode.headless" -}}
{{- printf "%s-raftnode-headless" (include "raftkv.fullname" .) }}
{{- end }}

{{- define "raftkv.gateway.fullname" -}}
{{- printf "%s-kvgateway" (include "raftkv.fullname" .) }}
{{- end }}

{{/* <headless>.<namespace>.svc.<clusterDomain>: resolves to every member (published even when not ready). */}}
{{- define "raftkv.raftnode.domain" -}}
{{- printf "%s.%s.svc.%s" (include "raftkv.raftnode.headless" .) (include "raftkv.namespace" .) .Values.clusterDomain }}
{{- end }}

{{/* RAFTKV_INITIAL_CLUSTER: <fullname>-raftnode-N=<fullname>-raftnode-N.<domain>:<port>,... for N < replicas. */}}
{{- define "raftkv.raftnode.initialCluster" -}}
{{- $sts := include "raftkv.raftnode.fullname" . }}
{{- $domain := include "raftkv.raftnode.domain" . }}
{{- $port := int .Values.raftnode.port }}
{{- $members := list }}
{{- range $i := until (int .Values.raftnode.replicas) }}
{{- $members = append $members (printf "%s-%d=%s-%d.%s:%d" $sts $i $sts $i $domain $port) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* The members' client addresses, for kvctl: <fullname>-raftnode-N.<domain>:<port>,... */}}
{{- define "raftkv.raftnode.endpoints" -}}
{{- $sts := include "raftkv.raftnode.fullname" . }}
{{- $domain := include "raftkv.raftnode.domain" . }}
{{- $port := int .Values.raftnode.port }}
{{- $members := list }}
{{- range $i := until (int .Values.raftnode.replicas) }}
{{- $members = append $members (printf "%s-%d.%s:%d" $sts $i $domain $port) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* The gateway Service's address inside the cluster. */}}
{{- define "raftkv.gateway.endpoint" -}}
{{- printf "%s.%s.svc.%s:%d" (include "raftkv.gateway.fullname" .) (include "raftkv.namespace" .) .Values.clusterDomain (int .Values.gateway.service.port) }}
{{- end }}

{{/* Common labels; pass a dict {ctx, component}. */}}
{{- define "raftkv.labels" -}}
helm.sh/chart: {{ include "raftkv.chart" .ctx }}
{{ include "raftkv.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: raftkv
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels; pass a dict {ctx, component}. */}}
{{- define "raftkv.selectorLabels" -}}
app.kubernetes.io/name: {{ include "raftkv.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* image reference; pass a dict {image, ctx}. A digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "raftkv.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The image the test hooks run kvctl from: tests.image, else the gateway image. */}}
{{- define "raftkv.tests.image" -}}
{{- $repo := default .Values.gateway.image.repository .Values.tests.image.repository }}
{{- if .Values.tests.image.repository }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.tests.image.tag) }}
{{- else }}
{{- include "raftkv.image" (dict "image" .Values.gateway.image "ctx" .) }}
{{- end }}
{{- end }}

{{- define "raftkv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "raftkv.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds of the members: the value if set, else
ceil(shutdownTimeoutMs / 1000) + terminationGraceMarginSeconds.
*/}}
{{- define "raftkv.raftnode.terminationGrace" -}}
{{- if kindIs "invalid" .Values.raftnode.terminationGracePeriodSeconds }}
{{- $ms := int64 .Values.raftnode.config.shutdownTimeoutMs }}
{{- add (div (add $ms 999) 1000) (int64 .Values.raftnode.terminationGraceMarginSeconds) }}
{{- else }}
{{- int64 .Values.raftnode.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Pod anti-affinity by host name; pass a dict {mode, weight, labels}. */}}
{{- define "raftkv.antiAffinity" -}}
{{- if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: {{ int .weight }}
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .labels | nindent 12 }}
{{- else if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- .labels | nindent 10 }}
{{- end }}
{{- end }}

{{/* Validate value combinations the schema cannot express. */}}
{{- define "raftkv.validate" -}}
{{- $c := .Values.raftnode.config }}
{{- if ne (mod (int64 $c.heartbeatMs) (int64 $c.tickMs)) 0 }}
{{- fail "raftnode.config.heartbeatMs must be a multiple of raftnode.config.tickMs" }}
{{- end }}
{{- if ne (mod (int64 $c.electionMs) (int64 $c.tickMs)) 0 }}
{{- fail "raftnode.config.electionMs must be a multiple of raftnode.config.tickMs" }}
{{- end }}
{{- if le (int64 $c.electionMs) (int64 $c.heartbeatMs) }}
{{- fail "raftnode.config.electionMs must be greater than raftnode.config.heartbeatMs" }}
{{- end }}
{{- end }}
