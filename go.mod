module github.com/nodevms/nodevms

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	golang.org/x/crypto v0.59.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/dchest/blake2b v1.0.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
