# soperator/installations/example/terraform.tf L1-9 and L26-28 at
# 0616445b19d4aac05e628351441f6242b663e7fe: the version constraint and the
# nebius provider's source. The other providers and the provider blocks are
# left out (they are not needed to read the module calls).
terraform {
  required_version = ">=1.8.0"

  required_providers {
    nebius = {
      source  = "terraform-provider.storage.eu-north1.nebius.cloud/nebius/nebius"
      version = ">=0.4"
    }
  }
}
