# Stands in for soperator/modules/filestore: each terraform_data is a
# "filesystem" whose input carries its size, as nebius_compute_v1_filesystem
# carries size_bytes.
variable "jail_size_gibibytes" {
  type = number
}

variable "submounts" {
  type = map(number)
}

resource "terraform_data" "jail" {
  input = { name = "jail", size_gibibytes = var.jail_size_gibibytes }
}

resource "terraform_data" "jail_submount" {
  for_each = var.submounts
  input    = { name = each.key, size_gibibytes = each.value }
}

output "sizes" {
  value = merge({ jail = var.jail_size_gibibytes }, var.submounts)
}
