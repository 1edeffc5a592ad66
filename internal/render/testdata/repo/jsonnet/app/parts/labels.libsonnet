{ tier: 'web' }
