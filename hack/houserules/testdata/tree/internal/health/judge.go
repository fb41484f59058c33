package health

import _ "example.com/m/internal/agent/gpu"
