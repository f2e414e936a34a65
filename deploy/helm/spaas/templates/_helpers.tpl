{{/* Object name prefix: <release>-<master.name>, or the release name when it already contains master.name. */}}
{{- define "spaas.fullname" -}}
{{- if contains .Values.master.name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Values.master.name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spaas.labels" -}}
app.kubernetes.io/name: spaas
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* Selector labels of one component: spaas.selector (dict "ctx" $ "component" "api") */}}
{{- define "spaas.selector" -}}
app.kubernetes.io/name: spaas
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{- define "spaas.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "spaas.fullname" .)) -}}
{{- end -}}

{{- define "spaas.image" -}}
{{- if .registry -}}{{ printf "%s/%s" (trimSuffix "/" .registry) .image }}{{- else -}}{{ .image }}{{- end -}}
{{- end -}}

{{- define "spaas.servicesImage" -}}
{{- include "spaas.image" (dict "registry" .Values.master.registry "image" .Values.master.imageName) -}}
{{- end -}}

{{- define "spaas.datastoresImage" -}}
{{- include "spaas.image" (dict "registry" .Values.master.registry "image" .Values.datastores.image) -}}
{{- end -}}

{{/* arch.* (0 never, 1 least, 2 no preference, 3 most preferred) as a node affinity. */}}
{{- define "spaas.affinity" -}}
{{- $prefs := dict "amd64" (int .Values.arch.amd64) "ppc64le" (int .Values.arch.ppc64le) -}}
{{- $allowed := list -}}
{{- range $arch := list "amd64" "ppc64le" }}{{ if gt (get $prefs $arch) 0 }}{{ $allowed = append $allowed $arch }}{{ end }}{{ end -}}
{{- if not $allowed }}{{ fail "arch.amd64 and arch.ppc64le are both 0: no node may run spaas" }}{{ end -}}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/arch, operator: In, values: {{ toJson $allowed }}}
    {{- $weights := dict "1" 1 "3" 100 }}
    {{- $terms := list }}
    {{- range $arch := list "amd64" "ppc64le" }}
    {{- $w := get $weights (toString (get $prefs $arch)) }}
    {{- if $w }}{{ $terms = append $terms (dict "arch" $arch "weight" $w) }}{{ end }}
    {{- end }}
    {{- if $terms }}
    preferredDuringSchedulingIgnoredDuringExecution:
      {{- range $terms }}
      - weight: {{ .weight }}
        preference:
          matchExpressions:
            - {key: kubernetes.io/arch, operator: In, values: [{{ .arch }}]}
      {{- end }}
    {{- end }}
{{- end -}}

{{- define "spaas.pullSecrets" -}}
{{- if .Values.master.registryUser }}
imagePullSecrets:
  - name: {{ include "spaas.fullname" . }}-master-registry
{{- end }}
{{- end -}}

{{/* Environment every platform service shares (settings in spaas/settings.py). */}}
{{- define "spaas.env" -}}
- name: SPAAS_ETCD_URL
  value: {{ printf "http://%s-etcd:2379" (include "spaas.fullname" .) | quote }}
- name: SPAAS_ETCD_USER
  value: root
- name: SPAAS_ETCD_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "spaas.secretName" . }}, key: etcd-root-password}}
- name: SPAAS_REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "spaas.secretName" . }}, key: redis-password}}
- name: SPAAS_REDIS_URL
  value: {{ printf "redis://:$(SPAAS_REDIS_PASSWORD)@%s-redis:6379/0" (include "spaas.fullname" .) | quote }}
- name: SPAAS_STATE_DIR
  value: /var/lib/spaas
- name: SPAAS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: SPAAS_RUNTIME
  value: kubernetes
{{- end -}}

{{- define "spaas.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "spaas.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}

{{/* An exec probe for services whose /healthz binds to loopback (builder, scaler). */}}
{{- define "spaas.loopbackProbe" -}}
exec:
  command: [python, -c, "import urllib.request as u; u.urlopen('http://127.0.0.1:9100/healthz', timeout=3)"]
{{- end -}}
