{{/*
Expand the name of the chart.
*/}}
{{- define "yunxiao-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name, truncated to 63 characters (DNS
label limit). A release name that already contains the chart name is used as is.
*/}}
{{- define "yunxiao-exporter.fullname" -}}
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
Chart name and version as used by the chart label.
*/}}
{{- define "yunxiao-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace, overridable for use as a subchart.
*/}}
{{- define "yunxiao-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Common labels. Every value is quoted: a release named 123, yes, true or 0x1f
must give the string label value "123", not a number or a boolean (which the
API server rejects).
*/}}
{{- define "yunxiao-exporter.labels" -}}
helm.sh/chart: {{ include "yunxiao-exporter.chart" . | quote }}
{{ include "yunxiao-exporter.selectorLabels" . }}
app.kubernetes.io/component: "exporter"
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{/*
Selector labels, quoted like the common labels.
*/}}
{{- define "yunxiao-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yunxiao-exporter.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
User-supplied labels (podLabels, service.labels, *.additionalLabels), keys and
values quoted, so `--set serviceMonitor.additionalLabels.release=123` (a
number to --set) still renders the string "123". Call with the dict; renders
nothing for an empty one.
*/}}
{{- define "yunxiao-exporter.quotedLabels" -}}
{{- range $key, $value := . }}
{{ $key | quote }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Service account name.
*/}}
{{- define "yunxiao-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "yunxiao-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image: repository with digest, or with tag (default appVersion).
*/}}
{{- define "yunxiao-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the token, and its key: token.existingSecret, else the
chart's own <fullname>-token (created from token.value, or by the user).
*/}}
{{- define "yunxiao-exporter.tokenSecretName" -}}
{{- if and .Values.token.existingSecret .Values.token.value }}
{{- fail "token: set either existingSecret or value, not both" }}
{{- end }}
{{- default (printf "%s-token" (include "yunxiao-exporter.fullname" .)) .Values.token.existingSecret }}
{{- end }}

{{- define "yunxiao-exporter.tokenSecretKey" -}}
{{- if .Values.token.existingSecret }}
{{- default "token" .Values.token.existingSecretKey }}
{{- else }}
{{- print "token" }}
{{- end }}
{{- end }}

{{/*
Where the container finds its files.
*/}}
{{- define "yunxiao-exporter.configDir" -}}/etc/yunxiao_exporter{{- end }}

{{/*
"true" when config.discovery.enabled is set, else empty.
*/}}
{{- define "yunxiao-exporter.discovery" -}}
{{- if dig "discovery" "enabled" false (default dict .Values.config) }}true{{ end }}
{{- end }}

{{/*
The exporter's config file: .Values.config with yunxiao.token_file pointing at
the mounted Secret. An empty pipeline list without discovery is refused here
(the configmap always renders), since the exporter would refuse it at start.
*/}}
{{- define "yunxiao-exporter.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- $yunxiao := default dict (get $config "yunxiao") }}
{{- if hasKey $yunxiao "token" }}
{{- fail "config.yunxiao.token: put the token in token.value or token.existingSecret, not in the config" }}
{{- end }}
{{- if and (not (get $config "pipelines")) (not (include "yunxiao-exporter.discovery" .)) }}
{{- fail "config.pipelines is empty and config.discovery.enabled is false: the exporter refuses such a config and the pod would crash-loop. List at least one pipeline (config.pipelines[].id) or set config.discovery.enabled=true" }}
{{- end }}
{{- $_ := set $yunxiao "token_file" (printf "%s/token" (include "yunxiao-exporter.configDir" .)) }}
{{- $_ = set $config "yunxiao" $yunxiao }}
{{- $webhook := default dict (get $config "webhook") }}
{{- if hasKey $webhook "token" }}
{{- fail "config.webhook.token: put the webhook secret in webhook.token or webhook.existingSecret, not in the config" }}
{{- end }}
{{- if include "yunxiao-exporter.webhook" . }}
{{- $_ = set $webhook "token_file" (printf "%s/webhook-token" (include "yunxiao-exporter.configDir" .)) }}
{{- $_ = set $config "webhook" $webhook }}
{{- else if $webhook }}
{{- fail "config.webhook: set webhook.enabled=true (with webhook.existingSecret or webhook.token) instead; the chart mounts the webhook secret and sets webhook.token_file" }}
{{- else }}
{{- $_ = unset $config "webhook" }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
"true" when webhook.enabled is set, else empty. webhook.ingress.enabled
without it is refused: the Ingress would route to a port nothing listens on.
*/}}
{{- define "yunxiao-exporter.webhook" -}}
{{- $webhook := default dict .Values.webhook }}
{{- if get $webhook "enabled" }}true
{{- else if dig "ingress" "enabled" false $webhook }}
{{- fail "webhook.ingress.enabled needs webhook.enabled=true" }}
{{- end }}
{{- end }}

{{/*
The Secret holding the webhook's token, and its key, chosen like the API
token's: webhook.existingSecret, else the chart's own <fullname>-webhook-token
(created from webhook.token, or by the user).
*/}}
{{- define "yunxiao-exporter.webhookSecretName" -}}
{{- if and .Values.webhook.existingSecret .Values.webhook.token }}
{{- fail "webhook: set either existingSecret or token, not both" }}
{{- end }}
{{- default (printf "%s-webhook-token" (include "yunxiao-exporter.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{- define "yunxiao-exporter.webhookSecretKey" -}}
{{- if .Values.webhook.existingSecret }}
{{- default "token" .Values.webhook.existingSecretKey }}
{{- else }}
{{- print "token" }}
{{- end }}
{{- end }}

{{/*
webhook.token, trimmed, refused unless the exporter would accept it: at least
16 characters of A-Z a-z 0-9 - . _ ~ (it travels in a URL query).
*/}}
{{- define "yunxiao-exporter.webhookToken" -}}
{{- $token := trim (toString .Values.webhook.token) }}
{{- if not (regexMatch "^[A-Za-z0-9._~-]{16,}$" $token) }}
{{- fail "webhook.token: the webhook token must be at least 16 characters, only letters, digits and - . _ ~ (it is sent in a URL query), e.g. from `openssl rand -hex 24`" }}
{{- end }}
{{- $token }}
{{- end }}

{{/*
The webhook listener's port: a valid port, not the metrics port.
*/}}
{{- define "yunxiao-exporter.webhookPort" -}}
{{- $port := int .Values.webhook.port }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "webhook.port %v: want a port number, 1 to 65535" .Values.webhook.port) }}
{{- end }}
{{- if or (eq $port 10036) (eq $port (int .Values.service.port)) }}
{{- fail (printf "webhook.port %d: the metrics listener (10036) or service.port uses it; pick another" $port) }}
{{- end }}
{{- $port }}
{{- end }}
