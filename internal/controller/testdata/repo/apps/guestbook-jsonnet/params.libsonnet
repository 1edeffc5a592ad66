{
  name: 'guestbook-ui',
  port: 80,
  targetPort: 8080,
}
