package api

import _ "example.com/m/pkg/apipb"
