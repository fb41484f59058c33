# The variables of soperator/installations/example that size filesystems.
variable "filestore_controller_spool" {
  type = object({
    spec     = optional(object({ size_gibibytes = number, block_size_kibibytes = number }))
    existing = optional(object({ id = string }))
  })
}

variable "filestore_jail" {
  type = object({
    spec     = optional(object({ size_gibibytes = number, block_size_kibibytes = number }))
    existing = optional(object({ id = string }))
  })
}

variable "filestore_jail_submounts" {
  type = list(object({
    name       = string
    mount_path = string
    spec       = optional(object({ size_gibibytes = number, block_size_kibibytes = number }))
    existing   = optional(object({ id = string }))
  }))
  default = []
}

variable "filestore_accounting" {
  type = object({
    spec     = optional(object({ size_gibibytes = number, block_size_kibibytes = number }))
    existing = optional(object({ id = string }))
  })
  default = null
}

variable "accounting_enabled" {
  type    = bool
  default = false
}

variable "nfs" {
  type = object({ enabled = bool, size_gibibytes = number })
  default = {
    enabled        = false
    size_gibibytes = 0
  }
}

resource "terraform_data" "sizes" {
  input = {
    controller_spool = try(var.filestore_controller_spool.spec.size_gibibytes, 0)
    jail             = try(var.filestore_jail.spec.size_gibibytes, 0)
    submounts        = [for s in var.filestore_jail_submounts : try(s.spec.size_gibibytes, 0)]
    accounting       = var.accounting_enabled ? try(var.filestore_accounting.spec.size_gibibytes, 0) : 0
  }
}
