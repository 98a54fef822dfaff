module github.com/iii-go/iii

go 1.26
