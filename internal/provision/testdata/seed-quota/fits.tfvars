# The seed's fix: 1024 GiB each for the jail and its submounts.
filestore_jail = {
  spec = {
    size_gibibytes       = 1024
    block_size_kibibytes = 4
  }
}

filestore_jail_submounts = [{
  name       = "training"
  mount_path = "/mnt/training"
  spec = {
    size_gibibytes       = 1024
    block_size_kibibytes = 4
  }
  }, {
  name       = "inference"
  mount_path = "/mnt/inference"
  spec = {
    size_gibibytes       = 1024
    block_size_kibibytes = 4
  }
}]
