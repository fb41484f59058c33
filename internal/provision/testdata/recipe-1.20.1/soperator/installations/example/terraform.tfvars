# soperator/installations/example/terraform.tfvars at
# 0616445b19d4aac05e628351441f6242b663e7fe, the settings of the variables in
# variables.tf (company_name and region filled in, the existing filesystem
# IDs and ssh keys left out): it fits the 1.20.1 types.
company_name = "demo"
region       = "eu-north1"

filestore_controller_spool = {
  spec = {
    size_gibibytes       = 128
    block_size_kibibytes = 4
  }
}
filestore_jail = {
  existing = {
    id = "computefilesystem-e00jail"
  }
}
filestore_jail_submounts = [{
  name       = "data"
  mount_path = "/mnt/data"
  existing = {
    id = "computefilesystem-e00data"
  }
}]
node_local_jail_submounts = [{
  name            = "local-data"
  mount_path      = "/mnt/local-data"
  size_gibibytes  = 1024
  disk_type       = "NETWORK_SSD"
  filesystem_type = "ext4"
}]
node_local_image_disk = {
  enabled = true
  spec = {
    size_gibibytes  = 930
    filesystem_type = "ext4"
    # Could be changed to `NETWORK_SSD_NON_REPLICATED`
    disk_type = "NETWORK_SSD_IO_M3"
  }
}
filestore_accounting = {
  spec = {
    size_gibibytes       = 512
    block_size_kibibytes = 4
  }
}
nfs = {
  enabled        = true
  size_gibibytes = 3720
  mount_path     = "/home"
  resource = {
    platform = "cpu-d3"
    preset   = "32vcpu-128gb"
  }
  public_ip = false
}
slurm_nodeset_system = {
  min_size = 3
  max_size = 9
  resource = {
    platform = "cpu-d3"
    preset   = "8vcpu-32gb"
  }
  boot_disk = {
    type                 = "NETWORK_SSD"
    size_gibibytes       = 192
    block_size_kibibytes = 4
  }
}
slurm_nodeset_controller = {
  size = 2
  resource = {
    platform = "cpu-d3"
    preset   = "4vcpu-16gb"
  }
  boot_disk = {
    type                 = "NETWORK_SSD"
    size_gibibytes       = 128
    block_size_kibibytes = 4
  }
}
slurm_nodeset_workers = [{
  size                    = 16
  nodes_per_nodegroup     = 4
  max_unavailable_percent = 50
  resource = {
    platform = "gpu-h100-sxm"
    preset   = "8gpu-128vcpu-1600gb"
  }
  boot_disk = {
    type                 = "NETWORK_SSD"
    size_gibibytes       = 512
    block_size_kibibytes = 4
  }
  gpu_cluster = {
    infiniband_fabric = "fabric-6"
  }
}]
slurm_nodeset_login = {
  size = 2
  resource = {
    platform = "cpu-d3"
    preset   = "32vcpu-128gb"
  }
  boot_disk = {
    type                 = "NETWORK_SSD"
    size_gibibytes       = 256
    block_size_kibibytes = 4
  }
}
slurm_nodeset_accounting = {
  resource = {
    platform = "cpu-d3"
    preset   = "8vcpu-32gb"
  }
  boot_disk = {
    type                 = "NETWORK_SSD"
    size_gibibytes       = 128
    block_size_kibibytes = 4
  }
}
public_o11y_enabled = true
accounting_enabled  = true
