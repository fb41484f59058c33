# Seed problem 8 in miniature: node groups that "already exist". With
# fail = true each resource's create fails the way a cloud API answers a
# create of something that exists (AlreadyExists); with fail = false they
# are plain resources, for importing into.
variable "fail" {
  type    = bool
  default = true
}

module "k8s" {
  source = "./modules/k8s"
  fail   = var.fail
}
