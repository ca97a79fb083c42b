#!/usr/bin/env node
import '../dist/bin/tandem.js'
