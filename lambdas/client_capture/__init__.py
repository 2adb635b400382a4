"""Client event capture: the authorizer that verifies Cognito access tokens, the API function that
puts clients' events on the capture bus, Firehose's transform into importer objects, and the user
pool's post-confirmation trigger that gives each user a Braze external id."""
