nfs = { enabled = false }
