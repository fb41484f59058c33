# The seed's problem 4 in miniature: the filestore module converts GiB to
# bytes with a provider-defined function, which Terraform < 1.8 cannot parse
# ("Missing newline after argument").
terraform {
  required_version = ">= 1.5"
}

variable "jail_size_gibibytes" {
  type    = number
  default = 1024
}

module "filestore" {
  source = "./modules/filestore"

  jail_size_gibibytes = var.jail_size_gibibytes
}

resource "terraform_data" "note" {
  # provider::units::from_gib in a comment is not a call.
  input = "provider::units::from_gib(1) in a string is not a call either"
}
