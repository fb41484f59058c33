variable "jail_size_gibibytes" {
  type = number
}

resource "terraform_data" "jail" {
  input = {
    name       = "jail"
    size_bytes = provider::units::from_gib(var.jail_size_gibibytes)
  }
}
