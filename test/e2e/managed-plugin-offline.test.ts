import { managedPluginSuite } from '../helpers/managed-plugin.js';

managedPluginSuite('offline');
