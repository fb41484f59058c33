# A stand-in for soperator/modules/k8s at
# 0616445b19d4aac05e628351441f6242b663e7fe with the two outputs the
# installation's operator modules read. The real gpu_involved
# (outputs.tf L24-27) is true when a worker preset has GPUs, which the real
# module looks up in soperator/modules/available_resources; here a "gpu-"
# platform stands for that.
variable "node_group_workers" {
  type = any
}

output "gpu_involved" {
  description = "Whether the GPUs were involved."
  value       = length([for worker in var.node_group_workers : worker if startswith(worker.resource.platform, "gpu-")]) > 0
}

output "cluster_id" {
  value = "mk8scluster-e00example"
}
