# The seed's first terraform.tfvars (seed problem 5): 128 + 2048 + 2 x 2048
# + 512 GiB = 6784 GiB = 7,284,264,534,016 bytes, the "requested" number of
# the cloud's "Quota limit exceeded" error, against a 5 TiB quota.
filestore_controller_spool = {
  spec = {
    size_gibibytes       = 128
    block_size_kibibytes = 4
  }
}

filestore_jail = {
  spec = {
    size_gibibytes       = 2048
    block_size_kibibytes = 4
  }
}

filestore_jail_submounts = [{
  name       = "training"
  mount_path = "/mnt/training"
  spec = {
    size_gibibytes       = 2048
    block_size_kibibytes = 4
  }
  }, {
  name       = "inference"
  mount_path = "/mnt/inference"
  spec = {
    size_gibibytes       = 2048
    block_size_kibibytes = 4
  }
}]

accounting_enabled = true

filestore_accounting = {
  spec = {
    size_gibibytes       = 512
    block_size_kibibytes = 4
  }
}

# A disk, not a filesystem: it does not count against the filesystem quota.
nfs = {
  enabled        = false
  size_gibibytes = 3720
}
