# The seed's second attempt: the submounts shrunk to 1024 GiB after they
# were created at 2048 GiB (seed problem 6).
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
    size_gibibytes = 1024
  }
}]
