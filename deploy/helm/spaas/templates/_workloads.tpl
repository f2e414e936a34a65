{{/*
One control-plane Deployment. Arguments (dict):
  ctx        the root context
  component  api | builder | scaler | proxy | registry
  command    the container's command (list)
  port       the HTTP port (0: none)
  probe      the readiness/liveness probe (YAML string)
  env        extra env entries (YAML string)
  state      mount the shared state volume (bool)
*/}}
{{- define "spaas.deployment" -}}
{{- $ := .ctx -}}
{{- $v := index $.Values .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "spaas.fullname" $ }}-{{ .component }}
  labels:
    {{- include "spaas.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component | quote }}
spec:
  {{- if not (and (hasKey $v "autoscaling") $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "spaas.selector" (dict "ctx" $ "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "spaas.labels" $ | nindent 8 }}
        app.kubernetes.io/component: {{ .component | quote }}
      annotations:
        # Roll the pods when a secret they read from the environment changes.
        checksum/secrets: {{ include (print $.Template.BasePath "/secrets.yaml") $ | sha256sum | trunc 16 | quote }}
    spec:
      serviceAccountName: {{ include "spaas.fullname" $ }}-{{ .component }}
      automountServiceAccountToken: {{ has .component (list "builder" "scaler") }}
      terminationGracePeriodSeconds: 40
      {{- include "spaas.podSecurity" $ | nindent 6 }}
      {{- include "spaas.affinity" $ | nindent 6 }}
      {{- include "spaas.pullSecrets" $ | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "spaas.servicesImage" $ | quote }}
          imagePullPolicy: {{ $.Values.master.imagePullPolicy }}
          command: {{ toJson .command }}
          env:
            {{- include "spaas.env" $ | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- if .port }}
          ports:
            - {name: http, containerPort: {{ .port }}}
          {{- end }}
          readinessProbe:
            {{- .probe | nindent 12 }}
            periodSeconds: 5
            timeoutSeconds: 4
          livenessProbe:
            {{- .probe | nindent 12 }}
            initialDelaySeconds: 20
            periodSeconds: 10
            timeoutSeconds: 4
            failureThreshold: 6
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          {{- include "spaas.containerSecurity" $ | nindent 10 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if .state }}
            - {name: state, mountPath: /var/lib/spaas}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if .state }}
        - name: state
          persistentVolumeClaim: {claimName: {{ include "spaas.fullname" $ }}-state}
        {{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "spaas.fullname" $ }}-{{ .component }}
  labels:
    {{- include "spaas.labels" $ | nindent 4 }}
spec:
  {{- if gt (int $v.replicas) 1 }}
  minAvailable: 1
  {{- else }}
  # A single replica may be evicted (the controllers are level-triggered: it resumes where it stopped).
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "spaas.selector" (dict "ctx" $ "component" .component) | nindent 6 }}
{{- if .port }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "spaas.fullname" $ }}-{{ .component }}
  labels:
    {{- include "spaas.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component | quote }}
spec:
  selector:
    {{- include "spaas.selector" (dict "ctx" $ "component" .component) | nindent 4 }}
  ports:
    - {name: http, port: {{ .port }}, targetPort: http}
{{- end }}
{{- if and (hasKey $v "autoscaling") $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "spaas.fullname" $ }}-{{ .component }}
  labels:
    {{- include "spaas.labels" $ | nindent 4 }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ include "spaas.fullname" $ }}-{{ .component }}}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}}
{{- end }}
{{- end -}}
