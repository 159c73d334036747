module example/filter

go 1.25

require weir/filter v0.0.0

// weir's Go filter SDK: the repository's copy (`weir filter new` points this at the project's own).
replace weir/filter => ../../../guest-sdk/go
