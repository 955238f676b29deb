module github.com/nodevms/nodevms

go 1.26
