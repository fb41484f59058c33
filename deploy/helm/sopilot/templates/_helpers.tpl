{{/*
Names and labels shared by every template.
*/}}

{{- define "sopilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sopilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sopilot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "sopilot.labels" -}}
helm.sh/chart: {{ include "sopilot.chart" . }}
app.kubernetes.io/name: {{ include "sopilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sopilot
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "controller"). */}}
{{- define "sopilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sopilot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects. */}}
{{- define "sopilot.componentLabels" -}}
{{ include "sopilot.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sopilot.controller.fullname" -}}
{{- printf "%s-controller" (include "sopilot.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sopilot.agent.fullname" -}}
{{- printf "%s-agent" (include "sopilot.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sopilot.controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "sopilot.controller.fullname" . -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.controllerName -}}
{{- end -}}
{{- end -}}

{{- define "sopilot.agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "sopilot.agent.fullname" . -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.agentName -}}
{{- end -}}
{{- end -}}

{{/* The controller Service's in-cluster DNS name. */}}
{{- define "sopilot.controller.dnsName" -}}
{{- printf "%s.%s.svc.%s" (include "sopilot.controller.fullname" .) .Release.Namespace .Values.tls.clusterDomain -}}
{{- end -}}

{{/* The controller image: the static one for slurmrestd, the one with the Slurm tools for the cli backend. */}}
{{- define "sopilot.controller.image" -}}
{{- $repo := .Values.controller.image.repository -}}
{{- if eq .Values.slurm.backend "cli" -}}
{{- $repo = .Values.controller.image.slurmcliRepository -}}
{{- end -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.controller.image.tag) -}}
{{- end -}}

{{- define "sopilot.agent.image" -}}
{{- printf "%s:%s" .Values.agent.image.repository (default .Chart.AppVersion .Values.agent.image.tag) -}}
{{- end -}}

{{/* Secret names of the TLS material (cert-manager's or the user's). */}}
{{- define "sopilot.tls.controllerSecret" -}}
{{- if .Values.tls.certManager.enabled -}}
{{- printf "%s-controller-tls" (include "sopilot.fullname" .) -}}
{{- else -}}
{{- .Values.tls.existingSecret.controller -}}
{{- end -}}
{{- end -}}

{{/* Agents authenticate with their pod's projected service account token
(TLS on, tls.agentAuth=serviceAccountToken): "true" or "". */}}
{{- define "sopilot.agentToken" -}}
{{- if and .Values.tls.enabled .Values.agent.enabled (eq .Values.tls.agentAuth "serviceAccountToken") -}}true{{- end -}}
{{- end -}}

{{/* The controller reviews Kubernetes tokens (TokenReview), for users
(auth.tokenReview.enabled) or for agents: "true" or "". */}}
{{- define "sopilot.tokenReview" -}}
{{- if or .Values.auth.tokenReview.enabled (include "sopilot.agentToken" .) -}}true{{- end -}}
{{- end -}}

{{/* Fail early on settings that contradict each other. */}}
{{- define "sopilot.validate" -}}
{{- if .Values.tls.enabled -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret.controller -}}
{{- fail "tls: set either tls.certManager.enabled or tls.existingSecret.controller, not both" -}}
{{- end -}}
{{- if and (not .Values.tls.certManager.enabled) (not .Values.tls.existingSecret.controller) -}}
{{- fail "tls.enabled needs tls.certManager.enabled=true or tls.existingSecret.controller" -}}
{{- end -}}
{{- if include "sopilot.agentToken" . -}}
{{- if semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version -}}
{{- fail (printf "tls.agentAuth=serviceAccountToken needs Kubernetes 1.30 or later (the API server names a pod token's node from 1.30, feature ServiceAccountTokenPodNodeInfo); this cluster is %s: use tls.agentAuth=clientCertificate" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if eq (dig "nodeName" "source" "" .Values.agent) "map" -}}
{{- fail "tls.agentAuth=serviceAccountToken binds each agent to its Kubernetes node's name, so the agent must report that name: agent.nodeName.source=map needs tls.agentAuth=clientCertificate" -}}
{{- end -}}
{{- if eq .Values.tls.agentCerts.source "certManagerPerNode" -}}
{{- fail "tls.agentCerts.source=certManagerPerNode needs tls.agentAuth=clientCertificate (with tls.agentAuth=serviceAccountToken agents need no certificates)" -}}
{{- end -}}
{{- if eq (include "sopilot.agent.serviceAccountName" .) "default" -}}
{{- fail "tls.agentAuth=serviceAccountToken needs a service account of the agents' own: any pod running as \"default\" could speak for its node (set serviceAccount.create=true or serviceAccount.agentName)" -}}
{{- end -}}
{{- if eq (include "sopilot.agent.serviceAccountName" .) (include "sopilot.controller.serviceAccountName" .) -}}
{{- fail "tls.agentAuth=serviceAccountToken needs different service accounts for the agents and the controller (serviceAccount.agentName, serviceAccount.controllerName)" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.tls.agentCerts.source "certManagerPerNode" -}}
{{- if not .Values.tls.certManager.enabled -}}
{{- fail "tls.agentCerts.source=certManagerPerNode needs tls.certManager.enabled=true" -}}
{{- end -}}
{{- if and .Values.agent.enabled (or (ne .Values.agent.nodeName.source "map") (not .Values.agent.nodeName.map)) -}}
{{- fail "tls.agentCerts.source=certManagerPerNode needs agent.nodeName.source=map and a non-empty agent.nodeName.map (Kubernetes node -> Slurm node)" -}}
{{- end -}}
{{- end -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- fail "tls.certManager.enabled needs tls.enabled=true" -}}
{{- end -}}
{{- if and (eq .Values.slurm.backend "rest") (not (get .Values.slurm.rest "url")) -}}
{{- fail "slurm.backend=rest needs slurm.rest.url" -}}
{{- end -}}
{{- if and .Values.agent.enabled .Values.jail.enabled (not .Values.jail.hostPath) (not .Values.jail.claimName) -}}
{{- fail "jail.enabled needs jail.claimName or jail.hostPath" -}}
{{- end -}}
{{- end -}}

{{/* Probe timings from a values block. */}}
{{- define "sopilot.probeTimings" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end -}}
