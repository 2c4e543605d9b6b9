// Command plumbline deploys models to authenticated HTTPS scoring endpoints.
package main

func main() {}
