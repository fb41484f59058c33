variable "fail" {
  type = bool
}

resource "terraform_data" "accounting" {
  count = 1
  provisioner "local-exec" {
    command = var.fail ? "echo 'rpc error: code = AlreadyExists desc = node group \"soperator-accounting\" already exists: mk8snodegroup-e00accountingxyz' >&2; exit 1" : "true"
  }
}

resource "terraform_data" "controller" {
  provisioner "local-exec" {
    command = var.fail ? "echo 'rpc error: code = AlreadyExists desc = node group with name \"soperator-controller\" already exists' >&2; exit 1" : "true"
  }
}
