# The seed's problem 7: the installation calls modules that are not on disk.
variable "nfs" {
  type = object({ enabled = bool })
}

variable "gpu_involved" {
  type    = bool
  default = true
}

module "nfs-server" {
  count = var.nfs.enabled ? 1 : 0

  source = "./modules/nfs-server"

  instance_name = "soperator-nfs-server"
  nfs_size      = 3720
}

module "nvidia_operator_gpu" {
  count = var.gpu_involved ? 1 : 0

  source = "./modules/gpu-operator"

  cluster_id = "mk8scluster-example"
}

resource "terraform_data" "slurm" {
  input = {
    nfs_path = var.nfs.enabled ? module.nfs-server[0].nfs_export_path : null
    nfs_host = var.nfs.enabled ? module.nfs-server[0].nfs_server_internal_ip : null
  }
}
