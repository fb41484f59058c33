package store

import _ "example.com/m/pkg/apipb"
