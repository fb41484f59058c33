# The module calls of soperator/installations/example/main.tf at
# 0616445b19d4aac05e628351441f6242b663e7fe that reach outside
# soperator/modules: nfs-server (L88-113), nvidia_operator_network
# (L219-234) and nvidia_operator_gpu (L236-255), with the k8s call (L121-188)
# they depend on and the slurm call's nfs argument (L410-415). Changed so
# that Terraform can read them without the cloud: the nebius data sources are
# locals, provider::units::from_gib(x) is x * 1024^3, the ssh keys and
# telemetry switches are literals, and the k8s call passes only the workers.
locals {
  k8s_cluster_name = "soperator-demo"
  project_id       = "project-e00example"
  subnet_id        = "vpcsubnet-e00example"
  subnet_cidr      = "10.0.0.0/16"
}

module "nfs-server" {
  count = var.nfs.enabled ? 1 : 0

  source = "../../../modules/nfs-server"

  parent_id = local.project_id
  subnet_id = local.subnet_id

  platform      = var.nfs.resource.platform
  preset        = var.nfs.resource.preset
  instance_name = "${local.k8s_cluster_name}-nfs-server"

  nfs_disk_name_suffix = local.k8s_cluster_name
  nfs_ip_range         = local.subnet_cidr
  nfs_size             = var.nfs.size_gibibytes * 1024 * 1024 * 1024
  nfs_path             = "/home"

  ssh_user_name   = "soperator"
  ssh_public_keys = []

  public_ip = var.nfs.public_ip

  providers = {
    nebius = nebius
  }
}

module "k8s" {
  depends_on = [
    module.nfs-server,
  ]

  source = "../../modules/k8s"

  node_group_workers = flatten([for i, nodeset in var.slurm_nodeset_workers :
    [
      for subset in range(ceil(nodeset.size / nodeset.nodes_per_nodegroup)) :
      {
        size                    = nodeset.nodes_per_nodegroup
        max_unavailable_percent = nodeset.max_unavailable_percent
        resource                = nodeset.resource
        boot_disk               = nodeset.boot_disk
        gpu_cluster             = nodeset.gpu_cluster
        nodeset_index           = i
        subset_index            = subset
      }
    ]
  ])
}

module "nvidia_operator_network" {
  count = module.k8s.gpu_involved ? 1 : 0

  depends_on = [
    module.k8s
  ]

  source = "../../../modules/network-operator"

  cluster_id = module.k8s.cluster_id
  parent_id  = local.project_id

  providers = {
    nebius = nebius
  }
}

module "nvidia_operator_gpu" {
  count = module.k8s.gpu_involved ? 1 : 0

  depends_on = [
    module.nvidia_operator_network
  ]

  source = "../../../modules/gpu-operator"

  cluster_id = module.k8s.cluster_id
  parent_id  = local.project_id

  enable_dcgm_exporter        = false
  enable_dcgm_service_monitor = false
  relabel_dcgm_exporter       = true

  providers = {
    nebius = nebius
  }
}

resource "terraform_data" "slurm_nfs" {
  input = {
    enabled = var.nfs.enabled
    path    = var.nfs.enabled ? module.nfs-server[0].nfs_export_path : null
    host    = var.nfs.enabled ? module.nfs-server[0].nfs_server_internal_ip : null
  }
}
