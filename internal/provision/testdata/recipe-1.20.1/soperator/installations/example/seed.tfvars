# The seed tutorial's terraform.tfvars settings (its "Key Settings
# Explained", with the filesystem sizes after its quota fix and its
# `nfs = { enabled = false }`), written for an older installation layout.
# They do not fit the 1.20.1 variable types: a worker `name`, no
# nodes_per_nodegroup / max_unavailable_percent / boot_disk, a top-level
# gpu_cluster, an nfs object without size_gibibytes / resource / public_ip.
company_name = "demo"
region       = "eu-north1"

slurm_nodeset_workers = [{
  name = "worker",
  size = 2,
  resource = {
    platform = "gpu-h100-sxm",
    preset   = "8gpu-128vcpu-1600gb"
  }
}]

gpu_cluster = {
  infiniband_fabric = "fabric-6"
}

filestore_controller_spool = {
  spec = {
    size_gibibytes       = 128
    block_size_kibibytes = 4
  }
}

filestore_jail = {
  spec = {
    size_gibibytes       = 1024
    block_size_kibibytes = 4
  }
}

filestore_jail_submounts = [
  { name = "training", mount_path = "/mnt/training", spec = { size_gibibytes = 1024, block_size_kibibytes = 4 } },
  { name = "inference", mount_path = "/mnt/inference", spec = { size_gibibytes = 1024, block_size_kibibytes = 4 } }
]

nfs = { enabled = false }

public_o11y_enabled = false
