{{- define "plumbline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plumbline.labels" -}}
app.kubernetes.io/name: plumbline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "plumbline.selector" -}}
app.kubernetes.io/name: plumbline
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plumbline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "plumbline.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "plumbline.fullname" .)) -}}
{{- end -}}

{{- define "plumbline.claim" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "plumbline.fullname" .)) -}}
{{- end -}}

{{- define "plumbline.postgres" -}}
{{- required "postgres.existingSecret is required: create a Secret with the PostgreSQL URL (kubectl create secret generic plumbline-postgres --from-literal=url=postgres://…) and pass --set postgres.existingSecret=plumbline-postgres" .Values.postgres.existingSecret -}}
{{- end -}}

{{/* The environment every plumbline container gets. */}}
{{- define "plumbline.env" -}}
- name: PLUMBLINE_STORE
  valueFrom:
    secretKeyRef:
      name: {{ include "plumbline.postgres" . }}
      key: {{ .Values.postgres.key }}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
{{- end -}}
