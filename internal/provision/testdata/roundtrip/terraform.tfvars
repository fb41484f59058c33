filestore_jail = {
  spec = {
    size_gibibytes = 2048
  }
}

filestore_jail_submounts = [{
  name       = "training"
  mount_path = "/mnt/training"
  spec = {
    size_gibibytes = 2048
  }
  }, {
  name       = "inference"
  mount_path = "/mnt/inference"
  spec = {
    size_gibibytes = 2048
  }
}]
