# A miniature Soperator installation: a filestore module creating the jail
# and its submounts, and the login address as an output.
variable "filestore_jail" {
  type = object({
    spec = object({ size_gibibytes = number })
  })
}

variable "filestore_jail_submounts" {
  type = list(object({
    name       = string
    mount_path = string
    spec       = object({ size_gibibytes = number })
  }))
  default = []
}

variable "login_ip" {
  type    = string
  default = "203.0.113.10"
}

module "filestore" {
  source = "./modules/filestore"

  jail_size_gibibytes = var.filestore_jail.spec.size_gibibytes
  submounts           = { for s in var.filestore_jail_submounts : s.name => s.spec.size_gibibytes }
}

resource "terraform_data" "login" {
  input = var.login_ip
}

output "slurm_login_ip" {
  value = terraform_data.login.output
}

output "filesystems" {
  value = module.filestore.sizes
}
