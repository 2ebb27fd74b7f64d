module github.com/mica-pki/mica/enroll/testdata/tools

go 1.26

require github.com/globalsign/est v1.0.6
