module weir/filter

go 1.25
