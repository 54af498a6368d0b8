// Package config holds the schemas of Tollgate's configuration files, with
// their defaults and validation in one place.
package config
