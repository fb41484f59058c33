gpu_involved = false
