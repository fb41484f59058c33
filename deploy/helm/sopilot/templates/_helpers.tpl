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

{{/*
Soperator's object names, from soperator.clusterName unless overridden one
by one (Soperator's internal/naming: <cluster>-<entity>).
*/}}
{{- define "sopilot.soperator.restURL" -}}
{{- default (printf "http://%s-rest-svc:6820" .Values.soperator.clusterName) (get .Values.slurm.rest "url") -}}
{{- end -}}
{{- define "sopilot.soperator.jwtSecret" -}}
{{- default (printf "%s-rest-jwt-key" .Values.soperator.clusterName) .Values.slurm.rest.jwtKey.secretName -}}
{{- end -}}
{{- define "sopilot.soperator.mungeSecret" -}}
{{- default (printf "%s-munge" .Values.soperator.clusterName) .Values.slurm.cli.mungeKey.secretName -}}
{{- end -}}
{{- define "sopilot.soperator.configMap" -}}
{{- default (printf "%s-slurm-configs" .Values.soperator.clusterName) .Values.slurm.cli.configMap -}}
{{- end -}}

{{/* soperator.version as a semver string ("1.20" -> "1.20.0"). */}}
{{- define "sopilot.soperator.semver" -}}
{{- $v := toString .Values.soperator.version -}}
{{- if eq (len (splitList "." $v)) 2 -}}{{- $v = printf "%s.0" $v -}}{{- end -}}
{{- $v -}}
{{- end -}}

{{/* The Slurm release Soperator's version runs (its Makefile's SLURM_VERSION). */}}
{{- define "sopilot.soperator.slurm" -}}
{{- $v := include "sopilot.soperator.semver" . -}}
{{- if semverCompare "<1.20.0-0" $v -}}
{{- fail (printf "soperator.version %s: sopilot supports Soperator 1.20 and later" .Values.soperator.version) -}}
{{- else if semverCompare "<1.21.0-0" $v -}}24.05
{{- else if semverCompare "<1.23.0-0" $v -}}24.11
{{- else if semverCompare "<3.0.0-0" $v -}}25.05
{{- else if semverCompare "<5.0.0-0" $v -}}25.11
{{- else if semverCompare "<6.0.0-0" $v -}}26.05
{{- else -}}
{{- fail (printf "soperator.version %s: unknown Slurm release; this chart knows Soperator 1.20 to 5.x" .Values.soperator.version) -}}
{{- end -}}
{{- end -}}

{{/* The jail's directory of the complete Slurm config set. */}}
{{- define "sopilot.soperator.jailConfigDir" -}}
{{- if .Values.slurm.cli.jailConfigDir -}}
{{- .Values.slurm.cli.jailConfigDir -}}
{{- else if semverCompare "<1.22.0-0" (include "sopilot.soperator.semver" .) -}}
/slurm
{{- else -}}
/etc/slurm
{{- end -}}
{{- end -}}

{{/*
The Slurm release of the cli image's tools: one that Debian packages and
that the cluster's slurmctld accepts (Slurm's compatibility window: from
24.11 on, its own and the three previous major releases; before, two).
*/}}
{{- define "sopilot.slurmClient" -}}
{{- if .Values.controller.image.slurmClient -}}
{{- .Values.controller.image.slurmClient -}}
{{- else -}}
{{- $slurm := include "sopilot.soperator.slurm" . -}}
{{- if eq $slurm "24.05" -}}
{{- fail (printf "slurm.backend=cli with soperator.version %s: its slurmctld is Slurm 24.05, which accepts clients 23.02 to 24.05, and Debian packages none of them (22.05, 24.11, 26.05). Use slurm.backend=rest, or build controller-slurmcli with Slurm 24.05's tools and set controller.image.slurmClient and controller.image.tag" .Values.soperator.version) -}}
{{- else if eq $slurm "26.05" -}}26.05
{{- else -}}24.11
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The controller image: the static one for slurmrestd, the one with the Slurm tools for the cli backend. */}}
{{- define "sopilot.controller.image" -}}
{{- $tag := default .Chart.AppVersion .Values.controller.image.tag -}}
{{- if eq .Values.slurm.backend "cli" -}}
{{- printf "%s:%s-slurm%s" .Values.controller.image.slurmcliRepository $tag (include "sopilot.slurmClient" .) -}}
{{- else -}}
{{- printf "%s:%s" .Values.controller.image.repository $tag -}}
{{- end -}}
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
{{- if eq (include "sopilot.agent.serviceAccountName" .) "default" -}}
{{- fail "tls.agentAuth=serviceAccountToken needs a service account of the agents' own: any pod running as \"default\" could speak for its node (set serviceAccount.create=true or serviceAccount.agentName)" -}}
{{- end -}}
{{- if eq (include "sopilot.agent.serviceAccountName" .) (include "sopilot.controller.serviceAccountName" .) -}}
{{- fail "tls.agentAuth=serviceAccountToken needs different service accounts for the agents and the controller (serviceAccount.agentName, serviceAccount.controllerName)" -}}
{{- end -}}
{{- end -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- fail "tls.certManager.enabled needs tls.enabled=true" -}}
{{- end -}}
{{- $_ := include "sopilot.soperator.slurm" . -}}
{{- if and (eq .Values.slurm.backend "cli") (eq .Values.slurm.cli.configSource "jail") (not .Values.jail.enabled) -}}
{{- fail "slurm.cli.configSource=jail needs jail.enabled" -}}
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
